/**
 * A test double of Ollama on a free loopback port, speaking its wire format: NDJSON streaming for
 * /api/chat and /api/generate (unless `stream: false`), the last line `done: true` with done_reason and
 * counts; /api/embed, legacy /api/embeddings, /api/tags, /api/ps, /api/version, /api/show; model
 * management: /api/pull and /api/create (NDJSON progress ending `{"status":"success"}`, or that one object
 * with `stream: false`), /api/copy and DELETE /api/delete (200, empty body); Ollama's error bodies.
 * Answers are deterministic: chat echoes the last user message, generate the prompt, one token per
 * space-separated word. Behaviour (latency, failures, hangs, models) can change while it runs; a pulled,
 * copied or created model joins `models` when its call ends, a deleted one leaves it.
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
  /** What /api/version reports (default FAKE_OLLAMA_VERSION). */
  version?: string
  /** The models the library has, for /api/pull; unset: any name can be pulled. */
  library?: string[]
}

interface Wire {
  version: string
  library: string[] | undefined
}

export function startFakeOllama(options: FakeOllamaOptions = {}): Promise<FakeServer> {
  const { apiKey, version = FAKE_OLLAMA_VERSION, library, ...behaviour } = options
  const wire: Wire = { version, library }
  const guarded = (method: string, path: string, x: Exchange): Response | Promise<Response> =>
    apiKey !== undefined && path !== '/' && x.request.headers.get('authorization') !== `Bearer ${apiKey}`
      ? errorResponse(401, 'unauthorized')
      : route(method, path, x, wire)
  // A space before the next JSON line: the ollama client parses ' {...}' as it parses '{...}'.
  return startFake({ isModelCall: (path) => MODEL_CALLS.has(path), errorResponse, ignorable: ' ', route: guarded }, DEFAULTS, behaviour)
}

function errorResponse(status: number, message: string): Response {
  return Response.json({ error: message }, { status })
}

function route(method: string, path: string, x: Exchange, wire: Wire): Response | Promise<Response> {
  const get = method === 'GET' || method === 'HEAD'
  switch (path) {
    case '/':
      return new Response('Ollama is running')
    case '/api/version':
      return get ? x.json(200, { version: wire.version }) : notAllowed()
    case '/api/tags':
      return get ? x.json(200, { models: x.behaviour.models.map((m) => modelEntry(m)) }) : notAllowed()
    case '/api/ps':
      return get ? x.json(200, { models: x.behaviour.loaded.map((m) => loadedEntry(m)) }) : notAllowed()
  }
  if (path === '/api/delete') return method === 'DELETE' ? remove(x) : notAllowed()
  if (MANAGEMENT.has(path)) return method === 'POST' ? manage(path, x, wire) : notAllowed()
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
  const family = entry.details.family
  const embedding = entry.name.includes('embed')
  return {
    license: 'LLAMA 3.2 COMMUNITY LICENSE AGREEMENT',
    modelfile: `# Modelfile generated by "ollama show"\nFROM ${entry.name}\nTEMPLATE """{{ .Prompt }}"""\nPARAMETER stop "<|eot_id|>"\n`,
    parameters: 'stop                           "<|eot_id|>"',
    template: '{{ .Prompt }}',
    details: entry.details,
    model_info: {
      'general.architecture': family,
      'general.parameter_count': embedding ? 136_727_040 : 3_212_749_888,
      [`${family}.context_length`]: embedding ? 2048 : 131_072,
    },
    capabilities: embedding ? ['embedding'] : ['completion'],
    modified_at: entry.modified_at,
  }
}

const MANAGEMENT = new Set(['/api/pull', '/api/create', '/api/copy'])

/** Pull, create and copy. Ollama takes the name as `model` or the older `name` (the ollama client's pull sends `name`). */
function manage(path: string, x: Exchange, wire: Wire): Response {
  const body = x.body ?? {}
  const known = (name: string) => x.behaviour.models.map(withTag).includes(withTag(name))
  const add = (name: string) => {
    if (!known(name)) x.behaviour.models.push(name)
  }
  if (path === '/api/copy') {
    const { source, destination } = body
    if (typeof source !== 'string' || typeof destination !== 'string') return errorResponse(400, 'source and destination are required')
    if (!known(source)) return errorResponse(404, `model "${source}" not found`)
    add(destination)
    return new Response(null, { status: 200 })
  }
  const name = String(body.model || body.name || '')
  if (name === '') return errorResponse(400, 'model is required')
  if (path === '/api/create') {
    if (typeof body.from === 'string' && !known(body.from)) return errorResponse(404, `model '${body.from}' not found`)
    const lines = [
      { status: 'reading model metadata' },
      { status: 'creating system layer' },
      { status: `using already created layer sha256:${digestOf(String(body.from ?? name))}` },
      { status: `writing layer sha256:${digestOf(`${name} system`)}` },
      { status: 'writing manifest' },
      { status: 'success' },
    ]
    return progress(x, lines, () => add(name))
  }
  // A model the library does not have fails after the manifest line, in-band, as Ollama's pull does.
  if (wire.library && !wire.library.map(withTag).includes(withTag(name))) {
    return progress(x, [{ status: 'pulling manifest' }, { error: 'pull model manifest: file does not exist' }], () => {})
  }
  const entry = modelEntry(name)
  const layers = [
    { digest: entry.digest, total: entry.size },
    { digest: digestOf(`${entry.name} template`), total: 1429 },
  ]
  const lines: object[] = [{ status: 'pulling manifest' }]
  for (const layer of layers) {
    const digest = `sha256:${layer.digest}`
    const status = `pulling ${layer.digest.slice(0, 12)}`
    lines.push({ status, digest, total: layer.total })
    lines.push({ status, digest, total: layer.total, completed: Math.floor(layer.total / 2) })
    lines.push({ status, digest, total: layer.total, completed: layer.total })
  }
  lines.push(
    { status: 'verifying sha256 digest' },
    { status: 'writing manifest' },
    { status: 'removing unused layers' },
    { status: 'success' },
  )
  return progress(x, lines, () => add(name))
}

/** NDJSON progress, `tokenDelayMs` apart; `done` runs once the last line is out. `stream: false`: the last line alone. */
function progress(x: Exchange, lines: object[], done: () => void): Response {
  if (x.body?.stream === false) {
    const last = lines.at(-1) as { error?: string }
    if (last.error) return errorResponse(500, last.error)
    done()
    return x.json(200, last)
  }
  const response = x.stream(
    lines.map((l) => `${JSON.stringify(l)}\n`),
    'application/x-ndjson',
  )
  const body = response.body?.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({ flush: done }))
  return new Response(body, { status: response.status, headers: response.headers })
}

/** DELETE /api/delete `{"model"}` (or `{"name"}`, as the ollama client sends it): 200 with no body, or 404. */
async function remove(x: Exchange): Promise<Response> {
  const body = (await x.request.json().catch(() => undefined)) as { model?: string; name?: string } | undefined
  x.call.body = body
  const name = String(body?.model || body?.name || '')
  if (name === '') return errorResponse(400, 'model is required')
  const at = x.behaviour.models.findIndex((m) => withTag(m) === withTag(name))
  if (at < 0) return errorResponse(404, `model '${name}' not found`)
  x.behaviour.models.splice(at, 1)
  x.behaviour.loaded = x.behaviour.loaded.filter((m) => withTag(m) !== withTag(name))
  return new Response(null, { status: 200 })
}

function digestOf(text: string): string {
  return new Bun.CryptoHasher('sha256').update(text).digest('hex')
}

const notFound = () => new Response('404 page not found', { status: 404, headers: { 'content-type': 'text/plain' } })
const notAllowed = () => new Response('405 method not allowed', { status: 405, headers: { 'content-type': 'text/plain' } })
