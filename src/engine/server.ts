/**
 * The HTTP server of `orch model-worker`: Ollama's API for the one model it loaded, so every Ollama client,
 * and orch's pools, talk to it as to `ollama serve`.
 *
 *   GET  /health         200 {status: "ok", …} once the model is loaded; 503 {status: "loading"} before
 *   GET  /api/version    {version}
 *   GET  /api/tags       the model, with its details (format, family, parameter size, quantization)
 *   GET  /api/ps         the model as loaded (size, size_vram, context_length)
 *   POST /api/show       details, model_info and capabilities of the model
 *   POST /api/chat       one answer, or NDJSON chunks ending with `done: true` and the counts (stream)
 *   POST /api/generate   the same for a prompt (`raw: true`: no chat template)
 *   POST /api/embed      L2-normalized embeddings of `input` (a string or a list)
 *
 * Errors are Ollama's: `{"error": "…"}` with 400 (bad request), 404 (another model, unknown path), 405, 413,
 * 503 (still loading). A client that goes away mid-stream stops its generation and frees its sequence.
 */
import { createHash } from 'node:crypto'
import { statSync } from 'node:fs'
import { logger } from '../core/log.ts'
import { parameterSize, quantization } from './gguf.ts'
import type { ChatMessage, Generation, LoadedModel, Prompt, Sampling } from './model.ts'

/** Largest request body, in bytes. */
export const MAX_BODY_BYTES = 8 * 1024 * 1024
const MAX_DEPTH = 32

export interface WorkerServer {
  url: string
  port: number
  stop(): Promise<void>
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json; charset=utf-8' } })

function depthOf(value: unknown, limit: number): number {
  if (value === null || typeof value !== 'object') return 0
  let deepest = 0
  for (const item of Object.values(value)) {
    deepest = Math.max(deepest, depthOf(item, limit))
    if (deepest >= limit) break
  }
  return deepest + 1
}

async function readBody(req: Request): Promise<Record<string, unknown>> {
  const declared = Number(req.headers.get('content-length') ?? 0)
  if (declared > MAX_BODY_BYTES) throw new HttpError(413, `request body over ${MAX_BODY_BYTES} bytes`)
  const text = await req.text()
  if (text.length > MAX_BODY_BYTES) throw new HttpError(413, `request body over ${MAX_BODY_BYTES} bytes`)
  let body: unknown
  try {
    body = JSON.parse(text === '' ? '{}' : text)
  } catch {
    throw new HttpError(400, 'invalid JSON body')
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'the body must be a JSON object')
  if (depthOf(body, MAX_DEPTH + 1) > MAX_DEPTH) throw new HttpError(400, `the body is nested deeper than ${MAX_DEPTH} levels`)
  return body as Record<string, unknown>
}

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v)

/** Ollama's `options` object: the sampling keys the engine applies, each checked. */
function samplingOf(options: unknown): Sampling {
  if (options === undefined || options === null) return {}
  if (typeof options !== 'object' || Array.isArray(options)) throw new HttpError(400, 'options must be an object')
  const o = options as Record<string, unknown>
  const out: Sampling = {}
  for (const key of ['temperature', 'top_p', 'min_p', 'repeat_penalty'] as const) {
    const value = o[key]
    if (value === undefined) continue
    if (!isNum(value) || value < 0) throw new HttpError(400, `options.${key} must be a number >= 0`)
    out[key] = value
  }
  for (const key of ['top_k', 'seed', 'num_predict', 'repeat_last_n'] as const) {
    const value = o[key]
    if (value === undefined) continue
    if (!isNum(value) || !Number.isInteger(value)) throw new HttpError(400, `options.${key} must be an integer`)
    out[key] = value
  }
  if (o.stop !== undefined) {
    const stop = typeof o.stop === 'string' ? [o.stop] : o.stop
    if (!Array.isArray(stop) || !stop.every((s) => typeof s === 'string'))
      throw new HttpError(400, 'options.stop must be a list of strings')
    out.stop = stop
  }
  return out
}

function messagesOf(value: unknown): ChatMessage[] {
  if (!Array.isArray(value)) throw new HttpError(400, 'messages must be a list')
  return value.map((m, i) => {
    if (m === null || typeof m !== 'object') throw new HttpError(400, `messages[${i}] must be an object`)
    const { role, content, images, tool_calls } = m as Record<string, unknown>
    if (role !== 'system' && role !== 'user' && role !== 'assistant')
      throw new HttpError(400, `messages[${i}].role must be system, user or assistant`)
    if (typeof content !== 'string') throw new HttpError(400, `messages[${i}].content must be a string`)
    if (images !== undefined) throw new HttpError(400, 'images are not supported: this engine runs text models')
    if (tool_calls !== undefined) throw new HttpError(400, 'tool calls are not supported by orch model-worker')
    return { role, content }
  })
}

/** The parts of a request this engine does not do, refused rather than ignored. */
function refuseUnsupported(body: Record<string, unknown>): void {
  if (body.format !== undefined && body.format !== '')
    throw new HttpError(400, 'format (structured output) is not supported by orch model-worker')
  if (body.tools !== undefined) throw new HttpError(400, 'tools are not supported by orch model-worker')
  if (body.images !== undefined) throw new HttpError(400, 'images are not supported: this engine runs text models')
  if (body.suffix !== undefined && body.suffix !== '')
    throw new HttpError(400, 'suffix (fill-in-the-middle) is not supported by orch model-worker')
}

export interface WorkerOptions {
  host: string
  port: number
  /** The version /api/version reports (orch's). */
  version: string
  /** Resolves with the model once loaded (the server answers 503 before). */
  model: Promise<LoadedModel>
}

export function startWorkerServer(options: WorkerOptions): WorkerServer {
  const log = logger()
  let loaded: LoadedModel | undefined
  let failed: string | undefined
  options.model.then(
    (m) => {
      loaded = m
    },
    (err) => {
      failed = err instanceof Error ? err.message : String(err)
    },
  )
  const streams = new Set<AbortController>()

  const ready = (): LoadedModel => {
    if (loaded) return loaded
    throw new HttpError(503, failed ? `the model failed to load: ${failed}` : 'the model is loading')
  }

  const modelCard = (m: LoadedModel) => {
    const stat = statSync(m.settings.path)
    const digest = createHash('sha256').update(`${m.settings.path}:${stat.size}:${stat.mtimeMs}`).digest('hex')
    return {
      name: m.settings.name,
      model: m.settings.name,
      modified_at: stat.mtime.toISOString(),
      size: m.info.fileBytes,
      digest,
      details: {
        parent_model: '',
        format: 'gguf',
        family: m.info.architecture,
        families: [m.info.architecture],
        parameter_size: parameterSize(m.info.parameters),
        quantization_level: quantization(m.info),
      },
    }
  }

  const checkModel = (m: LoadedModel, body: Record<string, unknown>) => {
    const asked = body.model ?? body.name
    if (asked !== undefined && typeof asked !== 'string') throw new HttpError(400, 'model must be a string')
    if (asked !== undefined && asked !== '' && asked !== m.settings.name && asked !== `${m.settings.name}:latest`)
      throw new HttpError(404, `model "${asked}" not found; this worker serves "${m.settings.name}"`)
  }

  const counts = (g: Generation) => ({
    total_duration: g.totalNs,
    load_duration: 0,
    prompt_eval_count: g.promptTokens,
    prompt_eval_duration: g.promptEvalNs,
    eval_count: g.evalTokens,
    eval_duration: g.evalNs,
  })

  async function generate(req: Request, kind: 'chat' | 'generate'): Promise<Response> {
    const m = ready()
    const body = await readBody(req)
    checkModel(m, body)
    refuseUnsupported(body)
    const sampling = samplingOf(body.options)
    let prompt: Prompt
    if (kind === 'chat') prompt = { kind: 'chat', messages: messagesOf(body.messages ?? []) }
    else {
      if (body.prompt !== undefined && typeof body.prompt !== 'string') throw new HttpError(400, 'prompt must be a string')
      if (body.system !== undefined && typeof body.system !== 'string') throw new HttpError(400, 'system must be a string')
      const text = (body.prompt as string | undefined) ?? ''
      prompt = body.raw
        ? { kind: 'raw', text }
        : {
            kind: 'chat',
            messages: [
              ...(body.system ? [{ role: 'system' as const, content: body.system as string }] : []),
              { role: 'user' as const, content: text },
            ],
          }
    }
    const prepared = m.prepare(prompt, sampling)
    const stream = body.stream !== false
    const base = () => ({ model: m.settings.name, created_at: new Date().toISOString() })
    const piece = (text: string) => (kind === 'chat' ? { message: { role: 'assistant', content: text } } : { response: text })
    const abort = new AbortController()
    req.signal.addEventListener('abort', () => abort.abort(new Error('client went away')), { once: true })
    if (!stream) {
      const g = await m.generate(prepared, () => {}, abort.signal)
      return json({ ...base(), ...piece(g.text), done: true, done_reason: g.doneReason, ...counts(g) })
    }
    const encoder = new TextEncoder()
    streams.add(abort)
    const body$ = new ReadableStream<Uint8Array>({
      start: async (controller) => {
        const send = (value: unknown) => {
          if (!abort.signal.aborted) controller.enqueue(encoder.encode(`${JSON.stringify(value)}\n`))
        }
        try {
          const g = await m.generate(prepared, (delta) => send({ ...base(), ...piece(delta), done: false }), abort.signal)
          send({ ...base(), ...piece(''), done: true, done_reason: g.doneReason, ...counts(g) })
        } catch (err) {
          send({ error: err instanceof Error ? err.message : String(err) })
        } finally {
          streams.delete(abort)
          if (!abort.signal.aborted) controller.close()
        }
      },
      cancel: () => abort.abort(new Error('client went away')),
    })
    return new Response(body$, { headers: { 'content-type': 'application/x-ndjson' } })
  }

  async function embed(req: Request): Promise<Response> {
    const m = ready()
    const body = await readBody(req)
    checkModel(m, body)
    const input = typeof body.input === 'string' ? [body.input] : body.input
    if (!Array.isArray(input) || input.length === 0 || !input.every((s) => typeof s === 'string'))
      throw new HttpError(400, 'input must be a string or a non-empty list of strings')
    const started = performance.now()
    const { embeddings, promptTokens } = await m.embed(input as string[]).catch((err) => {
      throw new HttpError(400, `this model gives no embeddings: ${err instanceof Error ? err.message : String(err)}`)
    })
    const total = Math.round((performance.now() - started) * 1e6)
    return json({ model: m.settings.name, embeddings, total_duration: total, load_duration: 0, prompt_eval_count: promptTokens })
  }

  const routes: Record<string, { method: string; run: (req: Request) => Response | Promise<Response> }> = {
    '/health': {
      method: 'GET',
      run: () => {
        if (!loaded) return json({ status: failed ? 'failed' : 'loading', ...(failed ? { error: failed } : {}) }, 503)
        return json({
          status: 'ok',
          model: loaded.settings.name,
          backend: loaded.backend,
          parallel: loaded.settings.parallel,
          busy: loaded.busy,
          queued: loaded.queued,
          requests: loaded.requests,
          peak_parallel: loaded.peakActive,
          context_per_request: loaded.contextPerRequest,
        })
      },
    },
    '/api/version': { method: 'GET', run: () => json({ version: options.version }) },
    '/api/tags': { method: 'GET', run: () => json({ models: loaded ? [modelCard(loaded)] : [] }) },
    '/api/ps': {
      method: 'GET',
      run: () => {
        if (!loaded) return json({ models: [] })
        const card = modelCard(loaded)
        const vram = loaded.backend === 'cpu' ? 0 : loaded.model.size
        return json({
          models: [{ ...card, expires_at: '9999-12-31T23:59:59Z', size_vram: vram, context_length: loaded.contextPerRequest }],
        })
      },
    },
    '/api/show': {
      method: 'POST',
      run: async (req) => {
        const m = ready()
        const body = await readBody(req)
        checkModel(m, body)
        const arch = m.info.architecture
        return json({
          modelfile: `FROM ${m.settings.path}`,
          parameters: '',
          template: '',
          details: modelCard(m).details,
          model_info: {
            'general.architecture': arch,
            'general.parameter_count': m.info.parameters,
            ...(m.info.contextLength !== undefined ? { [`${arch}.context_length`]: m.info.contextLength } : {}),
            ...(m.info.embeddingLength !== undefined ? { [`${arch}.embedding_length`]: m.info.embeddingLength } : {}),
            ...(m.info.blockCount !== undefined ? { [`${arch}.block_count`]: m.info.blockCount } : {}),
          },
          capabilities: ['completion', 'embedding'],
          modified_at: modelCard(m).modified_at,
        })
      },
    },
    '/api/chat': { method: 'POST', run: (req) => generate(req, 'chat') },
    '/api/generate': { method: 'POST', run: (req) => generate(req, 'generate') },
    '/api/embed': { method: 'POST', run: embed },
  }

  const server = Bun.serve({
    hostname: options.host,
    port: options.port,
    // A connection silent this long is closed (Bun's most: 255 s). A streamed answer sends each token as it
    // comes; one answer (stream: false) that generates for longer than this is cut: stream long answers.
    idleTimeout: 255,
    // Above the limit, so that a body past it gets a 413 answer from readBody rather than a reset connection.
    maxRequestBodySize: MAX_BODY_BYTES * 2,
    fetch: async (req) => {
      const path = new URL(req.url).pathname
      const route = routes[path]
      try {
        if (!route) throw new HttpError(404, `no such endpoint: ${path}`)
        if (req.method !== route.method && !(req.method === 'HEAD' && route.method === 'GET'))
          throw new HttpError(405, `${path} takes ${route.method}`)
        return await route.run(req)
      } catch (err) {
        if (err instanceof HttpError) return json({ error: err.message }, err.status)
        if (err instanceof RangeError) return json({ error: err.message }, 400)
        log.error(`${req.method} ${path}: ${err instanceof Error ? err.message : String(err)}`)
        return json({ error: err instanceof Error ? err.message : 'internal error' }, 500)
      }
    },
  })
  return {
    url: `http://${options.host}:${server.port}`,
    port: server.port ?? options.port,
    stop: async () => {
      for (const abort of streams) abort.abort(new Error('the worker is stopping'))
      await server.stop(true)
    },
  }
}
