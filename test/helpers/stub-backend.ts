/**
 * An in-process Backend whose calls finish when the test says so (or after a delay), for scheduler tests
 * that are about ordering and limits rather than HTTP. Wire-format tests use fake-ollama.ts instead.
 */
import type { Backend, ChatChunk, EmbedResponse, GenerateChunk } from '../../src/backends/types.ts'
import { BackendError } from '../../src/backends/types.ts'

export interface StubCall {
  kind: 'chat' | 'generate' | 'embed'
  model: string
  input?: string | string[]
  signal: AbortSignal | undefined
  finish: (error?: Error) => void
}

export interface StubBackend extends Backend {
  calls: StubCall[]
  inflight: number
  maxInflight: number
  /** When set, calls finish by themselves after this many ms. */
  autoMs: number | undefined
  healthy: boolean
  models: string[]
  loaded: string[]
  failWith: ((call: StubCall) => Error | undefined) | undefined
}

export function stubBackend(name: string, init: Partial<Pick<StubBackend, 'autoMs' | 'models' | 'loaded' | 'type'>> = {}): StubBackend {
  const stub: StubBackend = {
    name,
    type: init.type ?? 'ollama',
    url: `stub://${name}`,
    calls: [],
    inflight: 0,
    maxInflight: 0,
    autoMs: init.autoMs,
    healthy: true,
    models: init.models ?? ['m:latest'],
    loaded: init.loaded ?? [],
    failWith: undefined,
    async *chat(request, options) {
      await run(stub, { kind: 'chat', model: request.model, signal: options?.signal })
      yield chunk(request.model, `hello from ${name}`)
    },
    async *generate(request, options) {
      await run(stub, { kind: 'generate', model: request.model, signal: options?.signal })
      yield { model: request.model, created_at: new Date().toISOString(), response: `gen from ${name}`, done: true } as GenerateChunk
    },
    async embed(request, options): Promise<EmbedResponse> {
      await run(stub, { kind: 'embed', model: request.model, input: request.input, signal: options?.signal })
      const inputs = typeof request.input === 'string' ? [request.input] : request.input
      return { model: request.model, embeddings: inputs.map((text) => [text.length, 1]) }
    },
    listModels: async () => stub.models.map((m) => ({ name: m, model: m })),
    loadedModels: async () => stub.loaded.map((m) => ({ name: m, model: m })),
    health: async () => ({ ok: stub.healthy, latency_ms: 0 }),
  }
  return stub
}

function chunk(model: string, content: string): ChatChunk {
  return { model, created_at: new Date().toISOString(), message: { role: 'assistant', content }, done: true, done_reason: 'stop' }
}

function run(stub: StubBackend, call: Omit<StubCall, 'finish'>): Promise<void> {
  stub.inflight++
  stub.maxInflight = Math.max(stub.maxInflight, stub.inflight)
  return new Promise<void>((resolve, reject) => {
    let settled = false
    const entry: StubCall = {
      ...call,
      finish: (error) => {
        if (settled) return
        settled = true
        stub.inflight--
        if (error) reject(error)
        else resolve()
      },
    }
    stub.calls.push(entry)
    const injected = stub.failWith?.(entry)
    if (injected) return entry.finish(injected)
    call.signal?.addEventListener('abort', () => entry.finish(new BackendError('aborted', { kind: 'aborted', backend: stub.name })), {
      once: true,
    })
    if (stub.autoMs !== undefined) setTimeout(() => entry.finish(), stub.autoMs)
  })
}

export const serverError = (backend: string) => new BackendError('500 from backend', { kind: 'http', status: 500, backend })
