/**
 * The Ollama backend. Model calls (chat, generate, embed) speak Ollama's wire format with fetch directly:
 * the request as JSON, the answer as NDJSON lines (or one JSON object for embed), Ollama's error bodies
 * mapped to BackendErrors. Metadata and model management go through the official `ollama` client, which
 * takes no per-request AbortSignal, so each of those calls gets its own client whose fetch is the call's
 * guarded fetch: the caller's signal and the deadlines reach the HTTP request, and ending the call early
 * closes it.
 */
import { Ollama } from 'ollama'
import { Ollama as OllamaBrowser } from 'ollama/browser'
import { type BackendTimeouts, type CallGuard, callOnce, probe, StreamFailure, startCall } from './timeouts.ts'
import {
  BackendError,
  type CallOptions,
  type ChatChunk,
  type EmbedResponse,
  type GenerateChunk,
  type LoadedModel,
  type ManagedBackend,
  type ModelInfo,
  type ModelManagement,
  type ProgressChunk,
  type ShowResponse,
} from './types.ts'

export interface OllamaBackendOptions {
  name: string
  url: string
  /** Bearer token, for an Ollama behind an authenticating proxy or a hosted Ollama API. */
  apiKey?: string | undefined
  timeouts: BackendTimeouts
}

const STREAM_END = 'Did not receive done or success response in stream.'

/** The longest timer there is (about 24.8 days): a pull or create has no whole-call bound, only idle_ms. */
const NO_TOTAL_MS = 2 ** 31 - 1

/** Ollama's port when a URL names none and no scheme either (as the ollama client reads `host`). */
const OLLAMA_PORT = '11434'

export const ollamaBackend = (o: OllamaBackendOptions): ManagedBackend => {
  const host = o.url.replace(/\/+$/, '')
  const headers = o.apiKey ? { authorization: `Bearer ${o.apiKey}` } : undefined
  const base = apiBase(host)
  const post = { 'content-type': 'application/json', accept: 'application/json', ...headers }
  const guardOptions = (phase: 'model' | 'meta', options: CallOptions | undefined) => ({
    backend: o.name,
    url: o.url,
    timeouts: o.timeouts,
    signal: options?.signal,
    phase,
  })

  /** One non-streamed call through a client bound to this call's signal. */
  const once = <T>(phase: 'model' | 'meta', options: CallOptions | undefined, run: (client: Ollama) => Promise<T>) =>
    callOnce(guardOptions(phase, options), (call) => run(new Ollama({ host, fetch: call.fetch, headers })))

  /** POST a model call; a status other than 2xx is the backend's refusal, with Ollama's message. */
  const send = async (call: CallGuard, path: string, body: unknown): Promise<Response> => {
    const response = await call.fetch(`${base}${path}`, { method: 'POST', headers: post, body: JSON.stringify(body) })
    if (!response.ok) throw await call.guard(refusal(o.name, response))
    return response
  }

  /**
   * A streamed call: Ollama's NDJSON lines pass through as it sent them (they are orch's canonical shapes)
   * until the one with `done`. Its lines are the stream's chunks (first_token_ms, idle_ms); a read of the
   * body is a wait. Lines are cut on the newline byte, which no multi-byte UTF-8 character contains, so
   * only whole lines are decoded.
   */
  async function* streamed<T extends { done?: boolean }>(options: CallOptions | undefined, path: string, body: unknown) {
    const call = startCall(guardOptions('model', options))
    let completed = false
    try {
      const response = await send(call, path, body)
      if (!response.body) throw new StreamFailure('the answer has no body')
      const reader = response.body.getReader()
      let rest: Uint8Array | undefined
      for (;;) {
        const { done, value } = await call.wait(reader.read())
        // Whole lines now; the bytes after the last newline wait for the rest of their line (at the end,
        // the last line may come without one).
        let whole: Uint8Array | undefined = rest
        if (!done) {
          const bytes = rest ? concat(rest, value) : value
          const cut = bytes.lastIndexOf(NEWLINE) + 1
          whole = cut > 0 ? bytes.subarray(0, cut) : undefined
          rest = cut < bytes.length ? bytes.subarray(cut) : undefined
        }
        const text = whole ? UTF8.decode(whole) : ''
        for (let start = 0; start < text.length; ) {
          const newline = text.indexOf('\n', start)
          const end = newline < 0 ? text.length : newline
          const line = text.slice(start, end)
          start = end + 1
          if (line.trim() === '') continue
          const chunk = parseLine(line) as T & { error?: unknown }
          if (chunk.error !== undefined) throw new StreamFailure(String(chunk.error))
          call.chunk()
          yield chunk as T
          if (chunk.done) {
            completed = true
            return
          }
        }
        if (done) break
      }
      throw new StreamFailure('the stream ended before done')
    } catch (thrown) {
      throw call.error(thrown)
    } finally {
      call.end(completed)
    }
  }

  return {
    name: o.name,
    type: 'ollama',
    url: o.url,

    // Images are sent as given (base64): never read as local file names, as the ollama client would.
    chat: (request, options) => streamed<ChatChunk>(options, '/api/chat', { ...request, stream: true }),

    generate: (request, options) => streamed<GenerateChunk>(options, '/api/generate', { ...request, stream: true }),

    embed: (request, options) =>
      callOnce(guardOptions('model', options), async (call) => (await (await send(call, '/api/embed', request)).json()) as EmbedResponse),

    listModels: (options) =>
      once('meta', options, async (client) => ((await client.list()).models as unknown as ModelInfo[]).map(modelInfo)),

    loadedModels: (options) =>
      once('meta', options, async (client) => ((await client.ps()).models as unknown as LoadedModel[]).map(loadedModel)),

    health: (options) => probe(() => once('meta', options, (client) => client.version())),

    manage: management(o, host, headers, once),
  }
}

/**
 * Where the API lives, as the ollama client reads a host: a scheme is added when missing (with Ollama's
 * port when no port is named either), the path kept, no trailing slash.
 */
function apiBase(host: string): string {
  const explicit = host.includes('://')
  const url = new URL(explicit ? host : `http://${host}`)
  if (!explicit && url.port === '') url.port = OLLAMA_PORT
  return url.href.replace(/\/+$/, '')
}

/** A non-2xx answer: Ollama's `{"error": "..."}`, else the text as it came, else the status line. */
async function refusal(backend: string, response: Response): Promise<BackendError> {
  const status = response.status
  const text = await response.text().catch(() => '')
  let message = text.trim() || `Error ${status}: ${response.statusText}`
  if (response.headers.get('content-type')?.includes('application/json')) {
    try {
      const error = (JSON.parse(text) as { error?: unknown }).error
      if (typeof error === 'string' && error !== '') message = error
    } catch {}
  }
  return new BackendError(`${backend}: HTTP ${status}: ${message}`, { kind: 'http', backend, status })
}

const NEWLINE = 10
/** Decodes whole lines only, so one decoder serves every call (no state between calls). */
const UTF8 = new TextDecoder()

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length)
  out.set(a)
  out.set(b, a.length)
  return out
}

function parseLine(line: string): unknown {
  try {
    return JSON.parse(line)
  } catch {
    throw new StreamFailure(`the backend sent a line that is not JSON: ${line.slice(0, 80)}`)
  }
}

/**
 * Show, pull, create, copy, delete and version, through the same client. Pull and create stream progress
 * for as long as the download or the conversion takes: bounded by first_token_ms until the first line and
 * idle_ms between lines, never by total_ms.
 */
function management(
  o: OllamaBackendOptions,
  host: string,
  headers: Record<string, string> | undefined,
  once: <T>(phase: 'meta', options: CallOptions | undefined, run: (client: Ollama) => Promise<T>) => Promise<T>,
): ModelManagement {
  async function* progress(options: CallOptions | undefined, open: (fetch: typeof globalThis.fetch) => Promise<AsyncIterable<unknown>>) {
    const timeouts = { ...o.timeouts, total_ms: NO_TOTAL_MS }
    const call = startCall({ backend: o.name, url: o.url, timeouts, signal: options?.signal, phase: 'model' })
    let completed = false
    try {
      for await (const line of call.stream(await call.guard(open(call.fetch)))) yield line as ProgressChunk
      completed = true
    } catch (thrown) {
      throw call.error(progressFailure(o.name, thrown))
    } finally {
      call.end(completed)
    }
  }
  const client = (fetch: typeof globalThis.fetch) => new Ollama({ host, fetch, headers })
  return {
    show: (request, options) => once('meta', options, async (c) => (await c.show(request as any)) as unknown as ShowResponse),
    pull: (request, options) =>
      progress(options, (fetch) => client(fetch).pull({ model: request.model, insecure: request.insecure, stream: true })),
    // The browser client: the Node one reads `from` as a local path when a file of that name exists.
    create: (request, options) =>
      progress(options, (fetch) => new OllamaBrowser({ host, fetch, headers }).create({ ...(request as any), stream: true })),
    copy: (source, destination, options) => once('meta', options, async (c) => void (await c.copy({ source, destination }))),
    delete: (model, options) => once('meta', options, async (c) => void (await c.delete({ model }))),
    version: (options) => once('meta', options, async (c) => (await c.version()).version),
  }
}

/** A progress stream's `{"error": ...}` line is the backend's refusal (no such model in the library), not a broken stream. */
function progressFailure(backend: string, thrown: unknown): unknown {
  if (thrown instanceof Error && thrown.constructor === Error && !('code' in thrown)) {
    if (thrown.message === STREAM_END) return new StreamFailure('the stream ended before success', { cause: thrown })
    return new BackendError(`${backend}: ${thrown.message}`, { kind: 'protocol', backend, retryable: false, cause: thrown })
  }
  return thrown
}

function modelInfo(m: ModelInfo): ModelInfo {
  return { name: m.name, model: m.model ?? m.name, size: m.size, digest: m.digest, modified_at: m.modified_at, details: m.details }
}

function loadedModel(m: LoadedModel): LoadedModel {
  return { ...modelInfo(m), size_vram: m.size_vram, expires_at: m.expires_at }
}
