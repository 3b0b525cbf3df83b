/**
 * The backend for OpenAI-compatible servers (llama.cpp's server, vLLM), with fetch. Requests and chunks
 * are converted from and to orch's Ollama shapes (openai-wire.ts). These servers keep their models
 * loaded, so the loaded models are the served models.
 */
import { chatBody, chatChunks, completionBody, generateChunks, sseEvents } from './openai-wire.ts'
import { type BackendTimeouts, type CallGuard, callOnce, probe, startCall } from './timeouts.ts'
import { type Backend, BackendError, type CallOptions, type EmbedResponse, type ModelInfo } from './types.ts'

export interface OpenAIBackendOptions {
  name: string
  url: string
  apiKey?: string | undefined
  timeouts: BackendTimeouts
}

type Phase = 'model' | 'meta'

export const openaiBackend = (o: OpenAIBackendOptions): Backend => {
  // Accept a base URL with or without the /v1 suffix.
  const base = o.url.replace(/\/+$/, '').replace(/\/v1$/, '')
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    ...(o.apiKey ? { authorization: `Bearer ${o.apiKey}` } : {}),
  }

  const send = async (call: CallGuard, path: string, body?: unknown): Promise<Response> => {
    const init: RequestInit = body === undefined ? { headers } : { method: 'POST', headers, body: JSON.stringify(body) }
    const response = await call.fetch(`${base}${path}`, init)
    if (!response.ok) throw await httpError(o.name, response)
    return response
  }

  const once = <T>(phase: Phase, options: CallOptions | undefined, run: (call: CallGuard) => Promise<T>): Promise<T> =>
    callOnce({ backend: o.name, url: o.url, timeouts: o.timeouts, signal: options?.signal, phase }, run)

  async function* streamed<T>(
    options: CallOptions | undefined,
    path: string,
    body: unknown,
    convert: (events: AsyncIterable<any>, model: string) => AsyncIterable<T>,
    model: string,
  ): AsyncGenerator<T> {
    const call = startCall({ backend: o.name, url: o.url, timeouts: o.timeouts, signal: options?.signal, phase: 'model' })
    let completed = false
    try {
      const response = await send(call, path, body)
      if (!response.body) throw new BackendError(`${o.name}: empty response body`, { kind: 'protocol', backend: o.name })
      yield* convert(call.stream(sseEvents(response.body)), model)
      completed = true
    } catch (thrown) {
      throw call.error(thrown)
    } finally {
      call.end(completed)
    }
  }

  const models = (options?: CallOptions) =>
    once('meta', options, async (call) => {
      const answer = (await (await send(call, '/v1/models')).json()) as { data?: { id: string; created?: number; owned_by?: string }[] }
      return (answer.data ?? []).map(
        (m): ModelInfo => ({
          name: m.id,
          model: m.id,
          ...(typeof m.created === 'number' ? { modified_at: new Date(m.created * 1000).toISOString() } : {}),
          ...(m.owned_by ? { details: { owned_by: m.owned_by } } : {}),
        }),
      )
    })

  return {
    name: o.name,
    type: 'openai',
    url: o.url,

    chat: (request, options) => streamed(options, '/v1/chat/completions', chatBody(request), chatChunks, request.model),

    generate: (request, options) => streamed(options, '/v1/completions', completionBody(request), generateChunks, request.model),

    embed: (request, options) =>
      once('model', options, async (call): Promise<EmbedResponse> => {
        const body = { model: request.model, input: request.input, ...(request.dimensions ? { dimensions: request.dimensions } : {}) }
        const answer = (await (await send(call, '/v1/embeddings', body)).json()) as {
          model?: string
          data?: { index: number; embedding: number[] }[]
          usage?: { prompt_tokens?: number }
        }
        const data = [...(answer.data ?? [])].sort((a, b) => a.index - b.index)
        const count = answer.usage?.prompt_tokens
        return {
          model: answer.model ?? request.model,
          embeddings: data.map((d) => d.embedding),
          ...(typeof count === 'number' ? { prompt_eval_count: count } : {}),
        }
      }),

    listModels: models,
    loadedModels: models,

    health: (options) =>
      probe(async () => {
        const check = (path: string) => once('meta', options, async (call) => void (await (await send(call, path)).text()))
        try {
          await check('/v1/models')
        } catch (thrown) {
          if (!(thrown instanceof BackendError && thrown.kind === 'http' && thrown.status === 404)) throw thrown
          await check('/health')
        }
      }),
  }
}

/**
 * An error answer: OpenAI's `{error: {message, code}}`, vLLM's older `{message}`, or the text as it came.
 * A string `code` (`context_length_exceeded`, ...) is kept as `upstream_code` for the OpenAI dialect.
 */
async function httpError(backend: string, response: Response): Promise<BackendError> {
  const text = await response.text().catch(() => '')
  let message = text.trim() || response.statusText
  let code: unknown
  try {
    const body = JSON.parse(text) as { error?: { message?: string; code?: unknown } | string; message?: string }
    message = (typeof body.error === 'string' ? body.error : body.error?.message) ?? body.message ?? message
    if (typeof body.error === 'object') code = body.error?.code
  } catch {}
  const status = response.status
  const details = typeof code === 'string' && code !== '' ? { upstream_code: code } : undefined
  return new BackendError(`${backend}: HTTP ${status}: ${message}`, { kind: 'http', backend, status, ...(details ? { details } : {}) })
}
