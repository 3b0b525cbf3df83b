/**
 * The Ollama backend, through the official `ollama` client. The client takes no per-request AbortSignal,
 * so every call gets its own client whose fetch is the call's guarded fetch: the caller's signal and the
 * deadlines reach the HTTP request, and ending the call early closes it.
 */
import { Ollama } from 'ollama'
import { type BackendTimeouts, callOnce, probe, StreamFailure, startCall } from './timeouts.ts'
import type {
  Backend,
  CallOptions,
  ChatChunk,
  ChatRequest,
  EmbedResponse,
  GenerateChunk,
  GenerateRequest,
  LoadedModel,
  ModelInfo,
} from './types.ts'

export interface OllamaBackendOptions {
  name: string
  url: string
  /** Bearer token, for an Ollama behind an authenticating proxy or a hosted Ollama API. */
  apiKey?: string | undefined
  timeouts: BackendTimeouts
}

const STREAM_END = 'Did not receive done or success response in stream.'

export const ollamaBackend = (o: OllamaBackendOptions): Backend => {
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
  }
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
