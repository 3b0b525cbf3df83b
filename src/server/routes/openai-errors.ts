/**
 * OpenAI's error vocabulary, for every answer under /v1 (routes and the gates before them):
 * `{"error": {"message", "type", "param", "code", "orch_code"}}`. `type` follows the status as OpenAI's own
 * error classes do; `code` is OpenAI's for the same condition, or null where OpenAI has none (as OpenAI
 * itself answers many 400s); `orch_code` is orch's code, the one orch's own endpoints show.
 */
import { BackendError } from '../../backends/types.ts'
import { OrchError } from '../../core/errors.ts'

export type OpenAIErrorType = 'invalid_request_error' | 'authentication_error' | 'permission_error' | 'rate_limit_error' | 'server_error'

export interface OpenAIErrorBody {
  error: { message: string; type: OpenAIErrorType; param: string | null; code: string | null; orch_code: string }
}

/**
 * Every orch error code to OpenAI's `code`. One table: a code missing here fails a unit test that reads
 * every code in src/. Backend HTTP errors are refined by what the backend said (`backendCode`).
 */
export const OPENAI_CODES: Readonly<Record<string, string | null>> = {
  // The request itself.
  E_VALIDATION: 'invalid_value',
  E_UNSUPPORTED: 'unsupported_parameter',
  E_BAD_JSON: null,
  E_JSON_TOO_DEEP: null,
  E_BODY_TOO_LARGE: null,
  E_BODY_TIMEOUT: 'request_timeout',
  E_BAD_HOST: null,
  E_BAD_TARGET: null,
  E_NOT_FOUND: null,
  E_HTTP_405: null,
  // Who may ask.
  E_UNAUTHORIZED: 'invalid_api_key',
  E_HOST_NOT_ALLOWED: null,
  E_ORIGIN_NOT_ALLOWED: null,
  // Models and capacity.
  E_MODEL_NOT_FOUND: 'model_not_found',
  E_QUEUE_FULL: 'rate_limit_exceeded',
  E_TASK_QUEUE_FULL: 'rate_limit_exceeded',
  E_BUSY: 'server_overloaded',
  E_OVERLOADED: 'server_overloaded',
  E_QUEUE_TIMEOUT: 'server_overloaded',
  E_NO_BACKEND: 'server_error',
  E_BREAKER_OPEN: 'server_error',
  // The client went away: nobody reads the answer.
  E_CANCELLED: null,
  E_HTTP_499: null,
  E_BACKEND_ABORTED: null,
  // The backend.
  E_BACKEND_CONNECT: 'server_error',
  E_BACKEND_TIMEOUT: 'request_timeout',
  E_BACKEND_PROTOCOL: 'server_error',
  E_BACKEND_HTTP: null,
  // orch's own faults.
  E_INTERNAL: 'server_error',
  E_RUNTIME: 'server_error',
  E_CONFIG: 'server_error',
  E_STATE_DB: 'server_error',
  E_STATE_DIR: 'server_error',
  E_STATE_NEWER: 'server_error',
  E_CACHE_DB: 'server_error',
  E_CACHE_BACKEND: 'server_error',
  // Autoscaling (orch's /scale endpoints; here for completeness): an unknown pool, a set refused by the mode.
  E_SCALE_POOL: null,
  E_SCALE_MODE: null,
  // A file the CLI would overwrite (orch scale manifests --out without --force).
  E_EXISTS: null,
  // The cluster's Redis (event_bus_type: redis): out of reach, or a command it refused.
  E_REDIS_UNAVAILABLE: 'server_error',
  E_REDIS_COMMAND: 'server_error',
  // The dashboard's pools and logs endpoints (orch's own; here for completeness).
  E_POOL_NOT_FOUND: null,
  E_WORKER_NOT_FOUND: null,
  E_NO_POOLS: null,
  E_LOG_SOURCE: 'invalid_value',
  // node-llama-cpp, the engine of llamacpp pools, not installed where orch looks (orch model-worker, doctor).
  E_ENGINE_MISSING: 'server_error',
  // Model management (Ollama's endpoints; here for completeness).
  E_NOT_MANAGED: null,
  E_NOT_CONFIGURED: null,
  E_BACKEND_FAILED: 'server_error',
  // Durable tasks and workflows (orch's endpoints; here for completeness).
  E_TASK: 'server_error',
  E_TASK_INSERT: 'server_error',
  E_STALLED: 'server_error',
  E_TASK_INVALID: 'invalid_value',
  E_TASK_CURSOR: 'invalid_value',
  E_TASK_NOT_FOUND: null,
  E_TASK_FINISHED: null,
  E_WORKFLOW_EXISTS: null,
  // Command-line only: never an HTTP answer.
  E_USAGE: null,
  E_LISTEN: null,
  E_START: null,
  E_STOP: null,
  E_ALREADY_RUNNING: null,
  E_UNREACHABLE: null,
  E_BATCH_NAME: null,
  E_BATCH_INPUTS_ROOT: null,
}

/** A 404 (unknown model or path) is an `invalid_request_error`, as OpenAI's API answers it. */
export function openaiErrorType(status: number): OpenAIErrorType {
  if (status === 401) return 'authentication_error'
  if (status === 403) return 'permission_error'
  if (status === 429) return 'rate_limit_error'
  if (status >= 500) return 'server_error'
  return 'invalid_request_error'
}

const CONTEXT_LENGTH = /context (?:length|window|size)|maximum context|too many tokens|input (?:is )?too long/i

/** What a backend's refusal means in OpenAI's words: its own string code first, then its status and message. */
function backendCode(error: BackendError): string | null {
  const upstream = error.details?.upstream_code
  if (typeof upstream === 'string') return upstream
  if (error.status === 404) return 'model_not_found'
  if (error.status === 429) return 'rate_limit_exceeded'
  if (error.status !== undefined && error.status >= 500) return 'server_error'
  if (CONTEXT_LENGTH.test(error.message)) return 'context_length_exceeded'
  return null
}

/** Unknown codes (a future `E_HTTP_<status>`) fall back on the status. */
function fallbackCode(status: number): string | null {
  if (status === 429) return 'rate_limit_exceeded'
  return status >= 500 ? 'server_error' : null
}

/** The OpenAI body of an error already given its status and the message the client may see. */
export function openaiErrorBody(error: unknown, status: number, message: string): OpenAIErrorBody {
  const known = error instanceof OrchError
  const orchCode = known ? error.code : 'E_INTERNAL'
  const field = known ? error.details?.field : undefined
  let code = orchCode in OPENAI_CODES ? (OPENAI_CODES[orchCode] ?? null) : fallbackCode(status)
  if (error instanceof BackendError && error.kind === 'http') code = backendCode(error)
  // The field is absent rather than wrong: OpenAI's code for that.
  if (orchCode === 'E_VALIDATION' && /^[^:]*: is required\b/.test(message)) code = 'missing_required_parameter'
  return {
    error: {
      message,
      type: openaiErrorType(status),
      param: typeof field === 'string' && field !== '' ? field : null,
      code,
      orch_code: orchCode,
    },
  }
}
