/**
 * A test double of Ollama on a free loopback port, speaking its wire format: NDJSON streaming for
 * /api/chat and /api/generate (unless `stream: false`), the last line `done: true` with done_reason and
 * counts; /api/embed, legacy /api/embeddings, /api/tags, /api/ps, /api/version, /api/show; Ollama's error
 * bodies. Answers are deterministic: chat echoes the last user message, generate the prompt, one token
 * per space-separated word. Behaviour (latency, failures, hangs, models) can change while it runs.
 *
 *   const ollama = await startFakeOllama({ tokenDelayMs: 5 })
 *   ... ollamaBackend({ name: 'test', url: ollama.url, timeouts }) ...
 *   await ollama.stop()
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
export { fakeEmbedding, tokenize } from './fake-common.ts'

export const FAKE_OLLAMA_VERSION = '0.12.3'

const DEFAULTS: FakeBehaviour = {
  latencyMs: 0,
  tokenDelayMs: 0,
  callCostMs: 0,
  hang: false,
  models: ['llama3.2', 'nomic-embed-text'],
  loaded: [],
  embedDims: 8,
  parallel: Number.POSITIVE_INFINITY,
  reply: defaultReply,
}

const MODEL_CALLS = new Set(['/api/chat', '/api/generate', '/api/embed', '/api/embeddings'])

/** `llama3.2` and `llama3.2:latest` are the same model to Ollama. */
export const withTag = (name: string) => (name.includes(':') ? name : `${name}:latest`)

export interface FakeOllamaOptions extends Partial<FakeBehaviour> {
  /** Bearer token every /api request must carry (an authenticating proxy in front of Ollama); unset accepts any. */
  apiKey?: string
}

export function startFakeOllama(options: FakeOllamaOptions = {}): Promise<FakeServer> {
  const { apiKey, ...behaviour } = options
  const guarded = (method: string, path: string, x: Exchange): Response =>
    apiKey !== undefined && path !== '/' && x.request.headers.get('authorization') !== `Bearer ${apiKey}`
      ? errorResponse(401, 'unauthorized')
      : route(method, path, x)
  // A space before the next JSON line: the ollama client parses ' {...}' as it parses '{...}'.
  return startFake({ isModelCall: (path) => MODEL_CALLS.has(path), errorResponse, ignorable: ' ', route: guarded }, DEFAULTS, behaviour)
}

function errorResponse(status: number, message: string): Response {
  return Response.json({ error: message }, { status })
}

function route(method: string, path: string, x: Exchange): Response {
  const get = method === 'GET' || method === 'HEAD'
  switch (path) {
    case '/':
      return new Response('Ollama is running')
    case '/api/version':
      return get ? x.json(200, { version: FAKE_OLLAMA_VERSION }) : notAllowed()
    case '/api/tags':
      return get ? x.json(200, { models: x.behaviour.models.map((m) => modelEntry(m)) }) : notAllowed()
    case '/api/ps':
      return get ? x.json(200, { models: x.behaviour.loaded.map((m) => loadedEntry(m)) }) : notAllowed()
  }
  if (method !== 'POST') return MODEL_CALLS.has(path) || path === '/api/show' ? notAllowed() : notFound()
  const model = x.call.model
  if (!MODEL_CALLS.has(path) && path !== '/api/show') return notFound()
  if (model === undefined || model === '') return errorResponse(400, 'model is required')
  const known = x.behaviour.models.map(withTag)
  if (!known.includes(withTag(model))) return errorResponse(404, `model "${model}" not found, try pulling it first`)
  if (path === '/api/show') return x.json(200, showEntry(model))
  if (!x.behaviour.loaded.map(withTag).includes(withTag(model))) x.behaviour.loaded.push(withTag(model))
  if (path === '/api/embed') return embed(x, model)
  if (path === '/api/embeddings') return x.json(200, { embedding: fakeEmbedding(String(x.body.prompt ?? ''), x.behaviour.embedDims) })
  return path === '/api/chat' ? generation(x, model, 'chat') : generation(x, model, 'generate')
}

function embed(x: Exchange, model: string): Response {
  const input: unknown = x.body.input
  const texts = Array.isArray(input) ? input.map(String) : [String(input ?? '')]
  return x.json(200, {
    model,
    embeddings: texts.map((t) => fakeEmbedding(t, x.behaviour.embedDims)),
    total_duration: 1_000_000 + texts.length * 100_000,
    load_duration: 1_000_000,
    prompt_eval_count: texts.reduce((n, t) => n + countWords(t), 0),
  })
}

function generation(x: Exchange, model: string, kind: 'chat' | 'generate'): Response {
  const body = x.body
  const messages: { role?: string; content?: string }[] = Array.isArray(body.messages) ? body.messages : []
  const input = kind === 'chat' ? ([...messages].reverse().find((m) => m.role === 'user')?.content ?? '') : String(body.prompt ?? '')
  const prompt = kind === 'chat' ? messages.map((m) => m.content ?? '').join(' ') : `${body.system ?? ''} ${input}`
  const all = tokenize(x.behaviour.reply(input))
  const limit = typeof body.options?.num_predict === 'number' && body.options.num_predict >= 0 ? body.options.num_predict : all.length
  const tokens = all.slice(0, limit)
  const promptCount = countWords(prompt)
  const stats = {
    done_reason: tokens.length < all.length ? 'length' : 'stop',
    total_duration: 2_000_000 + promptCount * 100_000 + tokens.length * 1_000_000,
    load_duration: 1_000_000,
    prompt_eval_count: promptCount,
    prompt_eval_duration: promptCount * 100_000,
    eval_count: tokens.length,
    eval_duration: tokens.length * 1_000_000,
  }
  const piece = (text: string) => (kind === 'chat' ? { message: { role: 'assistant', content: text } } : { response: text })
  const chunk = (text: string, done: boolean) => ({ model, created_at: new Date().toISOString(), ...piece(text), done })
  const last = { ...chunk('', true), ...stats, ...(kind === 'generate' ? { context: tokens.map((_, i) => i + 1) } : {}) }
  if (body.stream === false) {
    return x.json(200, { ...last, ...piece(tokens.join('')) })
  }
  const frames = [...tokens.map((t) => chunk(t, false)), last].map((c) => `${JSON.stringify(c)}\n`)
  return x.stream(frames, 'application/x-ndjson', (i) => `${JSON.stringify(chunk(` t${i}`, false))}\n`)
}

function modelEntry(name: string) {
  const tagged = withTag(name)
  const embedding = tagged.includes('embed')
  return {
    name: tagged,
    model: tagged,
    modified_at: '2025-01-01T00:00:00Z',
    size: embedding ? 274_302_450 : 2_019_393_189,
    digest: digestOf(tagged),
    details: {
      parent_model: '',
      format: 'gguf',
      family: embedding ? 'nomic-bert' : 'llama',
      families: [embedding ? 'nomic-bert' : 'llama'],
      parameter_size: embedding ? '137M' : '3.2B',
      quantization_level: embedding ? 'F16' : 'Q4_K_M',
    },
  }
}

function loadedEntry(name: string) {
  const entry = modelEntry(name)
  return { ...entry, expires_at: new Date(Date.now() + 5 * 60_000).toISOString(), size_vram: entry.size }
}

function showEntry(name: string) {
  const entry = modelEntry(name)
  return {
    modelfile: `FROM ${entry.name}`,
    parameters: '',
    template: '{{ .Prompt }}',
    details: entry.details,
    model_info: { 'general.architecture': entry.details.family },
    capabilities: entry.name.includes('embed') ? ['embedding'] : ['completion'],
  }
}

function digestOf(text: string): string {
  return new Bun.CryptoHasher('sha256').update(text).digest('hex')
}

const notFound = () => new Response('404 page not found', { status: 404, headers: { 'content-type': 'text/plain' } })
const notAllowed = () => new Response('405 method not allowed', { status: 405, headers: { 'content-type': 'text/plain' } })
