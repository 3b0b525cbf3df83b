/**
 * A test double of an OpenAI-compatible server (llama.cpp server, vLLM) on a free loopback port:
 * /v1/chat/completions and /v1/completions (SSE `data:` lines ending with `data: [DONE]`, a usage chunk
 * when `stream_options.include_usage`; one JSON object when not streamed), /v1/embeddings, /v1/models,
 * /health, and OpenAI's error bodies `{error: {message, type, code}}`. Same behaviour and instrumentation
 * as fake-ollama.ts; answers echo the last user message or the prompt, one token per word. Embeddings
 * honour `dimensions` as OpenAI's text-embedding-3 models do (cut, re-normalised; more than the model has
 * is a 400), unless `dimensions: false` (servers that ignore it, like llama.cpp's).
 */
import {
  countWords,
  defaultReply,
  type Exchange,
  type FakeBehaviour,
  type FakeServer,
  fakeEmbedding,
  startFake,
  tokenize,
} from './fake-common.ts'

export type { FakeBehaviour, FakeCall, FakeServer, FakeStats, Hang } from './fake-common.ts'
export { fakeEmbedding } from './fake-common.ts'

const DEFAULTS: FakeBehaviour = {
  latencyMs: 0,
  tokenDelayMs: 0,
  callCostMs: 0,
  hang: false,
  models: ['qwen2.5-7b-instruct', 'bge-small'],
  loaded: [],
  embedDims: 8,
  parallel: Number.POSITIVE_INFINITY,
  reply: defaultReply,
}

const MODEL_CALLS = new Set(['/v1/chat/completions', '/v1/completions', '/v1/embeddings'])

export interface FakeOpenAIOptions extends Partial<FakeBehaviour> {
  /** Bearer token every /v1 request must carry; unset accepts any. */
  apiKey?: string
  /** false: /v1/models answers 404 (servers that only have /health). */
  modelsEndpoint?: boolean
  /** false: embeddings ignore `dimensions` and answer full-length vectors. */
  dimensions?: boolean
}

export function startFakeOpenAI(options: FakeOpenAIOptions = {}): Promise<FakeServer> {
  const { apiKey, modelsEndpoint = true, dimensions = true, ...behaviour } = options
  const route = (method: string, path: string, x: Exchange): Response => {
    if (path === '/health') return x.json(200, { status: 'ok' })
    if (apiKey !== undefined && x.request.headers.get('authorization') !== `Bearer ${apiKey}`)
      return errorResponse(401, 'Invalid API key', 'invalid_api_key')
    if (path === '/v1/models' && method === 'GET' && modelsEndpoint) {
      return x.json(200, {
        object: 'list',
        data: x.behaviour.models.map((id) => ({ id, object: 'model', created: 1735689600, owned_by: 'fake' })),
      })
    }
    if (!MODEL_CALLS.has(path) || method !== 'POST') return errorResponse(404, `Not found: ${method} ${path}`, 'not_found')
    const model = x.call.model
    if (!model || !x.behaviour.models.includes(model))
      return errorResponse(404, `The model \`${model}\` does not exist.`, 'model_not_found')
    if (path === '/v1/embeddings') return embeddings(x, model, dimensions)
    return completion(x, model, path === '/v1/chat/completions' ? 'chat' : 'text')
  }
  return startFake(
    // An SSE comment line: clients skip it.
    { isModelCall: (path) => MODEL_CALLS.has(path), errorResponse: (s, m) => errorResponse(s, m), ignorable: ': stall\n\n', route },
    DEFAULTS,
    behaviour,
  )
}

function errorResponse(status: number, message: string, code?: string): Response {
  const type = status >= 500 ? 'server_error' : 'invalid_request_error'
  return Response.json({ error: { message, type, code: code ?? status } }, { status })
}

function embeddings(x: Exchange, model: string, honourDimensions: boolean): Response {
  const input: unknown = x.body.input
  const texts = Array.isArray(input) ? input.map(String) : [String(input ?? '')]
  const tokens = texts.reduce((n, t) => n + countWords(t), 0)
  const full = x.behaviour.embedDims
  const asked = honourDimensions && typeof x.body.dimensions === 'number' ? x.body.dimensions : full
  if (asked > full) return errorResponse(400, `This model does not support dimensions above ${full}.`, 'invalid_value')
  const vector = (t: string) => (asked === full ? fakeEmbedding(t, full) : unit(fakeEmbedding(t, full).slice(0, asked)))
  // Reversed on purpose: clients must order by `index`, not by position.
  const data = texts.map((t, index) => ({ object: 'embedding', index, embedding: vector(t) })).reverse()
  return x.json(200, { object: 'list', model, data, usage: { prompt_tokens: tokens, total_tokens: tokens } })
}

function completion(x: Exchange, model: string, kind: 'chat' | 'text'): Response {
  const body = x.body
  const messages: { role?: string; content?: unknown }[] = Array.isArray(body.messages) ? body.messages : []
  const text = (c: unknown) => (typeof c === 'string' ? c : Array.isArray(c) ? c.map((p) => p?.text ?? '').join('') : '')
  const input = kind === 'chat' ? text([...messages].reverse().find((m) => m.role === 'user')?.content) : String(body.prompt ?? '')
  const prompt = kind === 'chat' ? messages.map((m) => text(m.content)).join(' ') : input
  const all = tokenize(x.behaviour.reply(input))
  const tokens = typeof body.max_tokens === 'number' ? all.slice(0, body.max_tokens) : all
  const finish = tokens.length < all.length ? 'length' : 'stop'
  const usage = { prompt_tokens: countWords(prompt), completion_tokens: tokens.length, total_tokens: countWords(prompt) + tokens.length }
  const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${x.call.id}`
  const object = kind === 'chat' ? 'chat.completion' : 'text_completion'
  const chunkObject = kind === 'chat' ? 'chat.completion.chunk' : 'text_completion'
  const created = Math.floor(Date.now() / 1000)
  if (body.stream !== true) {
    const choice =
      kind === 'chat'
        ? { index: 0, message: { role: 'assistant', content: tokens.join('') }, finish_reason: finish }
        : { index: 0, text: tokens.join(''), finish_reason: finish }
    return x.json(200, { id, object, created, model, choices: [choice], usage })
  }
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
    `data: ${JSON.stringify({ id, object: chunkObject, created, model, choices, ...extra })}\n\n`
  const delta = (content: string, i: number) =>
    kind === 'chat'
      ? { index: 0, delta: i === 0 ? { role: 'assistant', content } : { content }, finish_reason: null }
      : { index: 0, text: content, finish_reason: null }
  const frames = tokens.map((t, i) => chunk([delta(t, i)]))
  frames.push(chunk([kind === 'chat' ? { index: 0, delta: {}, finish_reason: finish } : { index: 0, text: '', finish_reason: finish }]))
  if (body.stream_options?.include_usage === true) frames.push(chunk([], { usage }))
  frames.push('data: [DONE]\n\n')
  return x.stream(frames, 'text/event-stream', (i) => chunk([delta(` t${i}`, i)]))
}

function unit(v: number[]): number[] {
  const norm = Math.hypot(...v) || 1
  return v.map((n) => n / norm)
}
