/**
 * The one interface every model backend implements. Requests and chunks use Ollama's wire shapes as
 * orch's canonical form (orch is Ollama-first; the OpenAI-compatible backend converts both ways). Chat and
 * generate always stream from the backend: a caller that wants one answer collects the chunks, and the
 * first-token and idle timeouts work the same for both.
 */
import { OrchError, type OrchErrorOptions } from '../core/errors.ts'

export type BackendType = 'ollama' | 'openai'

/** Sampling and runtime options, Ollama names (`num_ctx`, `num_predict`); unknown keys pass through. */
export interface ModelOptions {
  temperature?: number
  seed?: number
  top_p?: number
  top_k?: number
  num_ctx?: number
  num_predict?: number
  stop?: string[]
  [key: string]: unknown
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool'
  content: string
  images?: string[]
  tool_calls?: unknown[]
  [key: string]: unknown
}

export interface ChatRequest {
  model: string
  messages: ChatMessage[]
  options?: ModelOptions
  format?: 'json' | Record<string, unknown>
  tools?: unknown[]
  keep_alive?: string | number
  think?: boolean
}

export interface GenerateRequest {
  model: string
  prompt: string
  system?: string
  suffix?: string
  images?: string[]
  raw?: boolean
  options?: ModelOptions
  format?: 'json' | Record<string, unknown>
  keep_alive?: string | number
}

export interface EmbedRequest {
  model: string
  input: string | string[]
  truncate?: boolean
  /** Length of the vectors wanted (recent Ollama and OpenAI-compatible servers cut them and re-normalise). */
  dimensions?: number
  options?: ModelOptions
  keep_alive?: string | number
}

/** Timing and token counts Ollama reports on the final chunk (nanoseconds, token counts). */
export interface GenerationStats {
  done_reason?: string
  total_duration?: number
  load_duration?: number
  prompt_eval_count?: number
  prompt_eval_duration?: number
  eval_count?: number
  eval_duration?: number
}

export interface ChatChunk extends GenerationStats {
  model: string
  created_at: string
  message: { role: 'assistant'; content: string; thinking?: string; tool_calls?: unknown[] }
  done: boolean
}

export interface GenerateChunk extends GenerationStats {
  model: string
  created_at: string
  response: string
  thinking?: string
  context?: number[]
  done: boolean
}

export interface EmbedResponse {
  model: string
  embeddings: number[][]
  total_duration?: number
  load_duration?: number
  prompt_eval_count?: number
}

export interface ModelInfo {
  name: string
  model: string
  size?: number
  digest?: string
  modified_at?: string
  details?: Record<string, unknown>
}

export interface LoadedModel extends ModelInfo {
  size_vram?: number
  expires_at?: string
}

export interface HealthStatus {
  ok: boolean
  latency_ms: number
  version?: string
  error?: string
}

export interface CallOptions {
  /** Aborts the HTTP request to the backend at once (client gone, task cancelled, timeout). */
  signal?: AbortSignal
}

export interface Backend {
  readonly name: string
  readonly type: BackendType
  readonly url: string
  chat(request: ChatRequest, options?: CallOptions): AsyncIterable<ChatChunk>
  generate(request: GenerateRequest, options?: CallOptions): AsyncIterable<GenerateChunk>
  embed(request: EmbedRequest, options?: CallOptions): Promise<EmbedResponse>
  listModels(options?: CallOptions): Promise<ModelInfo[]>
  loadedModels(options?: CallOptions): Promise<LoadedModel[]>
  health(options?: CallOptions): Promise<HealthStatus>
}

export type BackendErrorKind = 'connect' | 'timeout' | 'http' | 'protocol' | 'aborted'

/**
 * A failed backend call. `retryable` says whether another attempt could succeed: connection failures,
 * timeouts, 5xx and 429 can; other 4xx (bad request, unknown model) and protocol errors cannot.
 */
export class BackendError extends OrchError {
  readonly kind: BackendErrorKind
  /** Always known for a backend's failure (OrchError's field, narrowed). */
  declare readonly retryable: boolean
  readonly backend: string

  constructor(message: string, init: { kind: BackendErrorKind; backend: string } & Omit<OrchErrorOptions, 'exitCode'>) {
    super(message, {
      code: `E_BACKEND_${init.kind.toUpperCase()}`,
      ...init,
      retryable: init.retryable ?? isRetryable(init.kind, init.status),
    })
    this.name = 'BackendError'
    this.kind = init.kind
    this.backend = init.backend
  }

  /**
   * A backend's status and verdict are not orch's answer (statusOf maps them): `--json` output and error
   * bodies leave them out.
   */
  protected override facts(): Record<string, unknown> {
    return {}
  }
}

export function isRetryable(kind: BackendErrorKind, status?: number): boolean {
  if (kind === 'connect' || kind === 'timeout') return true
  if (kind === 'http' && status !== undefined) return status >= 500 || status === 429 || status === 408
  return false
}

// ── Model management ─────────────────────────────────────────────────────────────────────────────────
// What Ollama's own API offers beside model calls (/api/show, pull, create, copy, delete, version). Only
// backends that manage their models implement it (Ollama, and Ollama pool workers); an OpenAI-compatible
// server's models are managed on that server.

/** Ollama's model details, as /api/tags and /api/show give them. */
export interface ModelDetails {
  parent_model: string
  format: string
  family: string
  families: string[] | null
  parameter_size: string
  quantization_level: string
  [key: string]: unknown
}

/** `/api/show`'s request; other keys (`verbose`, `system`, `options`) pass through. */
export interface ShowRequest {
  model: string
  [key: string]: unknown
}

export interface ShowResponse {
  license?: string
  modelfile?: string
  parameters?: string
  template?: string
  system?: string
  details: ModelDetails
  model_info: Record<string, unknown> | null
  capabilities?: string[]
  modified_at?: string
  [key: string]: unknown
}

/** One line of a pull's or a create's progress; the last is `{"status": "success"}`. */
export interface ProgressChunk {
  status: string
  digest?: string
  total?: number
  completed?: number
}

export interface PullRequest {
  model: string
  insecure?: boolean
}

/** `/api/create`'s request: the new `model`, and `from`, `system`, `template`, `parameters`, ... as Ollama takes them. */
export interface CreateRequest {
  model: string
  from?: string
  [key: string]: unknown
}

export interface ModelManagement {
  show(request: ShowRequest, options?: CallOptions): Promise<ShowResponse>
  /** Progress as the backend sends it; bounded by first_token_ms and idle_ms, not total_ms (a pull takes long). */
  pull(request: PullRequest, options?: CallOptions): AsyncIterable<ProgressChunk>
  create(request: CreateRequest, options?: CallOptions): AsyncIterable<ProgressChunk>
  copy(source: string, destination: string, options?: CallOptions): Promise<void>
  delete(model: string, options?: CallOptions): Promise<void>
  /** The server's own version, from its /api/version. */
  version(options?: CallOptions): Promise<string>
}

export interface ManagedBackend extends Backend {
  readonly manage: ModelManagement
}

export function managesModels(backend: Backend): backend is ManagedBackend {
  return typeof (backend as Partial<ManagedBackend>).manage === 'object'
}
