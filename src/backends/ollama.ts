/**
 * The Ollama backend, through the official `ollama` client. The client takes no per-request AbortSignal,
 * so every call gets its own client whose fetch is the call's guarded fetch: the caller's signal and the
 * deadlines reach the HTTP request, and ending the call early closes it.
 */
import { Ollama } from 'ollama'
import { Ollama as OllamaBrowser } from 'ollama/browser'
import { type BackendTimeouts, callOnce, probe, StreamFailure, startCall } from './timeouts.ts'
import {
  BackendError,
  type CallOptions,
  type ChatChunk,
  type ChatRequest,
  type EmbedResponse,
  type GenerateChunk,
  type GenerateRequest,
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

export const ollamaBackend = (o: OllamaBackendOptions): ManagedBackend => {
  const host = o.url.replace(/\/+$/, '')
  const headers = o.apiKey ? { authorization: `Bearer ${o.apiKey}` } : undefined
  const begin = (phase: 'model' | 'meta', options?: CallOptions) => {
    const call = startCall({ backend: o.name, url: o.url, timeouts: o.timeouts, signal: options?.signal, phase })
    return { call, client: new Ollama({ host, fetch: call.fetch, headers }) }
  }

  /** One non-streamed call through a client bound to this call's signal. */
  const once = <T>(phase: 'model' | 'meta', options: CallOptions | undefined, run: (client: Ollama) => Promise<T>) =>
    callOnce({ backend: o.name, url: o.url, timeouts: o.timeouts, signal: options?.signal, phase }, (call) =>
      run(new Ollama({ host, fetch: call.fetch, headers })),
    )

  /** A streamed call: chunks pass through as Ollama sent them (they are orch's canonical shapes). */
  async function* streamed<T>(options: CallOptions | undefined, open: (client: Ollama) => Promise<AsyncIterable<unknown>>) {
    const { call, client } = begin('model', options)
    let completed = false
    try {
      for await (const chunk of call.stream(await call.guard(open(client)))) yield chunk as T
      completed = true
    } catch (thrown) {
      throw call.error(streamFailure(thrown))
    } finally {
      call.end(completed)
    }
  }

  return {
    name: o.name,
    type: 'ollama',
    url: o.url,

    chat: (request, options) =>
      streamed<ChatChunk>(options, (client) => client.chat({ ...(withoutSharedImages(request) as any), stream: true })),

    generate: (request: GenerateRequest, options) =>
      streamed<GenerateChunk>(options, (client) =>
        client.generate({ ...(request as any), images: request.images ? [...request.images] : undefined, stream: true }),
      ),

    embed: (request, options) => once('model', options, (client) => client.embed(request) as unknown as Promise<EmbedResponse>),

    listModels: (options) =>
      once('meta', options, async (client) => ((await client.list()).models as unknown as ModelInfo[]).map(modelInfo)),

    loadedModels: (options) =>
      once('meta', options, async (client) => ((await client.ps()).models as unknown as LoadedModel[]).map(loadedModel)),

    health: (options) => probe(() => once('meta', options, (client) => client.version())),

    manage: management(o, host, headers, once),
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

/** The client's stream reports Ollama's mid-stream `{"error": ...}` lines and early ends as plain Errors. */
function streamFailure(thrown: unknown): unknown {
  if (thrown instanceof Error && thrown.constructor === Error && !('code' in thrown)) {
    return new StreamFailure(thrown.message === STREAM_END ? 'the stream ended before done' : thrown.message, { cause: thrown })
  }
  return thrown
}

/** The client replaces each message's `images` in place; give it copies so the caller's request stays intact. */
function withoutSharedImages(request: ChatRequest): ChatRequest {
  if (!request.messages.some((m) => m.images)) return request
  return { ...request, messages: request.messages.map((m) => (m.images ? { ...m, images: [...m.images] } : m)) }
}

function modelInfo(m: ModelInfo): ModelInfo {
  return { name: m.name, model: m.model ?? m.name, size: m.size, digest: m.digest, modified_at: m.modified_at, details: m.details }
}

function loadedModel(m: LoadedModel): LoadedModel {
  return { ...modelInfo(m), size_vram: m.size_vram, expires_at: m.expires_at }
}
