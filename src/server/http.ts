/**
 * What every route shares: the dependencies, the route type, JSON responses, body reading with a size cap
 * and valibot validation (400 naming the field), and errors mapped to a status in one of three dialects —
 * orch's own, Ollama's (`{"error": "..."}`) and OpenAI's (routes/openai-errors.ts).
 */
import * as v from 'valibot'
import { BackendError } from '../backends/types.ts'
import type { EventBus } from '../bus/local.ts'
import type { OrchConfig } from '../config/schema.ts'
import { httpError, OrchError } from '../core/errors.ts'
import type { MetricsService } from '../metrics/service.ts'
import type { Supervisor } from '../pool/supervisor.ts'
import type { Autoscaler } from '../scale/autoscaler.ts'
import type { Engine } from '../scheduler/engine.ts'
import type { Store } from '../store/db.ts'
import { DEFAULT_PAGE, MAX_PAGE } from '../store/page.ts'
import type { TaskQueue } from '../tasks/queue.ts'
import type { RunnerRegistry } from '../tasks/workers.ts'
import type { WorkflowService } from '../workflows/service.ts'
import { openaiErrorBody } from './routes/openai-errors.ts'

export interface AppDeps {
  config: OrchConfig
  engine: Engine
  /** The state.db connection (one per process, shared: no lock contention with itself). */
  store: Store
  tasks: TaskQueue
  bus: EventBus
  /** The autoscaler of this process's pools (GET /scale, POST /scale/{pool}); absent without pools. */
  scale?: Autoscaler
  /** In a cluster (event_bus_type: redis): the task runners of every machine, as their heartbeats say. */
  runners?: RunnerRegistry
  version: string
  /** `instance` label of metrics: host name, or ORCH instance id. */
  instance: string
  startedAt: number
  /** The Prometheus series and the performance sampler: GET /metrics, and every request counted. */
  metrics: MetricsService
  /** Workflows, their runs and schedules: the /workflows and /runs routes. */
  workflows: WorkflowService
  /** The supervisor of the configured pools; absent when there are none. */
  pools?: Supervisor
  /** The state directory ($ORCH_HOME): GET /logs reads serve.log under it. */
  home?: string
}

export interface RouteContext {
  request: Request
  url: URL
  params: Record<string, string>
  deps: AppDeps
}

export type Handler = (ctx: RouteContext) => Response | Promise<Response>

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE'
  /** `/tasks/:id/wait`: segments starting with `:` bind params. */
  path: string
  handler: Handler
  /** Answers without a token (liveness probes). */
  public?: boolean
  /**
   * May hold the connection quiet for long (model calls, streams, SSE, long-polls): exempt from
   * server.idle_timeout_s; bounded by its own timeouts, server.body_timeout_ms and the client leaving.
   */
  long?: boolean
}

export type Dialect = 'orch' | 'ollama' | 'openai'

const JSON_TYPE = 'application/json; charset=utf-8'
const JSON_HEADERS: Readonly<Record<string, string>> = { 'content-type': JSON_TYPE }

export function json(data: unknown, status = 200, headers?: Record<string, string>): Response {
  return new Response(JSON.stringify(data), { status, headers: headers ? { 'content-type': JSON_TYPE, ...headers } : JSON_HEADERS })
}

/** A client error with the HTTP status it maps to (one constructor for every room: src/errors.ts). */
export { httpError }

export function errorResponse(error: unknown, dialect: Dialect = 'orch'): Response {
  const status = statusOf(error)
  const known = error instanceof OrchError
  // An unexpected fault's own message may name files, code or runtime internals: the log has it, not the client.
  const message = status === 500 && !known ? 'internal error (the orch serve log has the details)' : (error as Error).message
  const headers: Record<string, string> = {}
  if (known && error.retryAfterS !== undefined) headers['retry-after'] = String(error.retryAfterS)
  // The rest of a body that never arrived would be read as the next request: end the connection.
  if (known && error.details?.close === true) headers.connection = 'close'
  const code = known ? error.code : 'E_INTERNAL'
  if (dialect === 'ollama') return json({ error: message }, status, headers)
  if (dialect === 'openai') return json(openaiErrorBody(error, status, message), status, headers)
  return json({ error: { code, message, ...(known && error.hint ? { hint: error.hint } : {}), ...fieldOf(error) } }, status, headers)
}

/**
 * The HTTP status an error maps to: scheduler and HTTP errors carry their own (`OrchError.status`); a
 * backend's 4xx passes through (unknown model stays 404), its 5xx and broken answers are 502, its timeouts 504.
 */
export function statusOf(error: unknown): number {
  if (error instanceof BackendError) {
    if (error.kind === 'timeout') return 504
    if (error.kind === 'aborted') return 499
    if (error.kind === 'http' && error.status !== undefined && error.status < 500) return error.status
    return 502
  }
  if (error instanceof OrchError && error.status !== undefined) return error.status
  return 500
}

function fieldOf(error: unknown): Record<string, unknown> {
  return error instanceof OrchError && typeof error.details?.field === 'string' ? { field: error.details.field } : {}
}

/**
 * The request body as JSON, validated. Bodies over the limit are refused with 413 before they are read in
 * full (by Content-Length, and by counting bytes for chunked bodies).
 */
export async function readJson<S extends v.GenericSchema>(ctx: RouteContext, schema: S): Promise<v.InferOutput<S>> {
  return validate(schema, await readJsonValue(ctx))
}

/**
 * The body parsed as JSON (undefined when empty), capped at server.body_limit_bytes and
 * server.max_json_depth; 400 when not JSON or nested too deep.
 */
export async function readJsonValue(ctx: RouteContext): Promise<unknown> {
  const { server } = ctx.deps.config
  const text = await readBody(ctx.request, server.body_limit_bytes, server.body_timeout_ms)
  if (text === '') return undefined
  return parseJsonBounded(text, server.max_json_depth, 'the body')
}

/**
 * JSON.parse behind a nesting bound. Every later walk of the value (validation, cache keys, forwarding)
 * recurses, and a body nested 10⁵ deep would exhaust the stack or hold the event loop for a second: the
 * depth is measured on the text first, in one pass that recurses nowhere.
 */
export function parseJsonBounded(text: string, maxDepth: number, what: string, field = ''): unknown {
  const depth = jsonDepth(text, maxDepth)
  if (depth > maxDepth) {
    throw httpError(400, `${what} is nested deeper than ${maxDepth} levels (server.max_json_depth)`, 'E_JSON_TOO_DEEP', { field })
  }
  try {
    return JSON.parse(text)
  } catch (error) {
    throw httpError(400, `${what} is not valid JSON: ${(error as Error).message}`, 'E_BAD_JSON', { field })
  }
}

const OPEN_BRACE = 123
const OPEN_BRACKET = 91
const CLOSE_BRACE = 125
const CLOSE_BRACKET = 93
const QUOTE = 34
const BACKSLASH = 92

/** The deepest nesting of arrays and objects in `text`, stopping once past `stopAbove`; strings skipped. */
export function jsonDepth(text: string, stopAbove: number): number {
  let depth = 0
  let deepest = 0
  const n = text.length
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i)
    if (c === QUOTE) {
      for (i++; i < n; i++) {
        const d = text.charCodeAt(i)
        if (d === BACKSLASH) i++
        else if (d === QUOTE) break
      }
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > deepest) {
        deepest = depth
        if (deepest > stopAbove) return deepest
      }
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--
  }
  return deepest
}

/** `?limit=` of a list by the one page rule (src/store/page.ts): a 400 naming the field when off. */
export function pageLimit(url: URL): number {
  const raw = url.searchParams.get('limit')
  const limit = raw === null ? DEFAULT_PAGE : Number(raw)
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) {
    throw httpError(400, `limit: expected an integer from 1 to ${MAX_PAGE}, got ${JSON.stringify(raw)}`, 'E_VALIDATION', {
      field: 'limit',
    })
  }
  return limit
}

export function validate<S extends v.GenericSchema>(schema: S, data: unknown): v.InferOutput<S> {
  const result = v.safeParse(schema, data, { abortEarly: true })
  if (result.success) return result.output
  const issue = result.issues[0] as v.BaseIssue<unknown>
  const field = v.getDotPath(issue) ?? ''
  const got = issue.input === undefined ? 'nothing' : JSON.stringify(issue.input)?.slice(0, 60)
  // A schema without its own message gets valibot's ('Invalid type: Expected boolean but received "no"'),
  // which would say what came twice: keep only what was expected.
  const said = issue.message.startsWith('Invalid ') && issue.expected ? `expected ${issue.expected}` : issue.message
  const message = field ? `${field}: ${said}, got ${got}` : `the body: ${said}, got ${got}`
  throw httpError(400, message, 'E_VALIDATION', { field })
}

/**
 * The body as text: one read when its length is declared (and within the cap), else counted as it arrives.
 * The whole body must arrive within `timeoutMs`: a client that stops short, or trickles, gets a 408 and
 * its connection is closed (server.body_timeout_ms).
 */
export async function readBody(request: Request, limit: number, timeoutMs = 0): Promise<string> {
  const declared = Number(request.headers.get('content-length') ?? Number.NaN)
  if (declared > limit) throw tooLarge(limit)
  if (declared === 0) return ''
  // `request.body` is read only without a declared length: touching it turns the runtime's own buffer into
  // a JS stream, which costs more than the rest of this function.
  let reading: Promise<string>
  if (declared <= limit) reading = request.text()
  else if (request.body) reading = readCounted(request.body, limit)
  else return ''
  if (timeoutMs <= 0) return reading
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      // The read left behind would reject later with nobody listening.
      reading.catch(() => undefined)
      reject(bodyTimeout(timeoutMs))
    }, timeoutMs)
    reading.then(
      (text) => {
        clearTimeout(timer)
        resolve(text)
      },
      (error: unknown) => {
        clearTimeout(timer)
        reject(error)
      },
    )
  })
}

async function readCounted(body: ReadableStream<Uint8Array>, limit: number): Promise<string> {
  const reader = body.getReader()
  const parts: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > limit) {
      await reader.cancel()
      throw tooLarge(limit)
    }
    parts.push(value)
  }
  return new TextDecoder().decode(Buffer.concat(parts))
}

function bodyTimeout(ms: number): OrchError {
  return httpError(408, `the request body did not arrive within ${ms} ms (server.body_timeout_ms)`, 'E_BODY_TIMEOUT', {
    close: true,
  })
}

function tooLarge(limit: number): OrchError {
  return httpError(413, `the request body is larger than ${limit} bytes (server.body_limit_bytes)`, 'E_BODY_TOO_LARGE')
}
