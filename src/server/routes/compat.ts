/**
 * What the Ollama- and OpenAI-compatible routes share: per-request scheduling options from headers
 * (`x-orch-tenant`, `x-orch-priority`), a signal that ends the upstream call when the client leaves,
 * streamed responses whose early errors still get a status (the first chunk is awaited before any byte
 * goes out), and the model catalogue: the union over healthy backends.
 */
import * as v from 'valibot'
import type { LoadedModel, ModelInfo } from '../../backends/types.ts'
import { logger } from '../../core/log.ts'
import type { BackendView, RequestOptions } from '../../scheduler/engine.ts'
import { normalizeModel } from '../../scheduler/router.ts'
import { type Dialect, errorResponse, httpError, type RouteContext } from '../http.ts'

export interface Call {
  /** For the engine: tenant, priority, and a signal that fires when the client leaves or the stream is cancelled. */
  options: RequestOptions
  /** End the upstream call (the response stream was cancelled). */
  abort(): void
}

const TENANT = /^[\w.:@-]{1,128}$/
const PRIORITY = /^-?\d{1,6}$/

/** The scheduling options of one request, from its headers; a malformed header is a 400 naming it. */
export function startCall(ctx: RouteContext): Call {
  return abortable(callOptions(ctx), ctx)
}

/**
 * The scheduling options of a request answered whole: tenant and priority from its headers (a malformed
 * header is a 400 naming it), and the client's own signal (nothing else can end the call).
 */
export function callOptions(ctx: RouteContext): RequestOptions {
  const headers = ctx.request.headers
  const tenant = headers.get('x-orch-tenant')?.trim()
  const priority = headers.get('x-orch-priority')?.trim()
  if (tenant !== undefined && !TENANT.test(tenant)) {
    throw httpError(400, 'x-orch-tenant: expected 1 to 128 letters, digits or . _ : @ -', 'E_VALIDATION', { field: 'x-orch-tenant' })
  }
  if (priority !== undefined && !PRIORITY.test(priority)) {
    throw httpError(400, `x-orch-priority: expected an integer, got "${priority.slice(0, 20)}"`, 'E_VALIDATION', {
      field: 'x-orch-priority',
    })
  }
  const options: RequestOptions = { signal: ctx.request.signal }
  if (tenant) options.tenant = tenant
  if (priority) options.priority = Number(priority)
  return options
}

/** `options` for a streamed answer: its signal also fires when the response stream is cancelled (`abort`). */
export function abortable(options: RequestOptions, ctx: RouteContext): Call {
  const local = new AbortController()
  return {
    options: { ...options, signal: AbortSignal.any([ctx.request.signal, local.signal]) },
    abort: () => local.abort(new Error('the client went away')),
  }
}

/** How one dialect writes a stream: each item as text ('' for nothing), the end, and an error after the first byte. */
export interface StreamFormat<T> {
  contentType: string
  item(value: T): string
  end(): string
  dialect: Dialect
  /** The in-band error, given the dialect's error body as JSON text. */
  fail(body: string): string
}

/** Ollama's streams: one JSON object a line. */
export const ndjson: StreamFormat<unknown> = {
  contentType: 'application/x-ndjson',
  dialect: 'ollama',
  item: (chunk) => `${JSON.stringify(chunk)}\n`,
  end: () => '',
  fail: (body) => `${body}\n`,
}

const log = logger('http')

/**
 * A streamed response. The first item is awaited here, so a refusal (queue full, unknown model, backend
 * down) still throws and becomes a status with the dialect's body; later failures go in-band. Cancelling
 * the body (the client went away) aborts the upstream call and releases its scheduler slot.
 */
export async function streamResponse<T>(source: AsyncIterable<T>, format: StreamFormat<T>, call: Call): Promise<Response> {
  const iterator = source[Symbol.asyncIterator]()
  let pending: IteratorResult<T> | undefined = await iterator.next()
  const bytes = new TextEncoder()
  let cancelled = false
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        // Loop until something is written: a pull that enqueues nothing would not be called again.
        for (;;) {
          const result: IteratorResult<T> = pending ?? (await iterator.next())
          pending = undefined
          if (cancelled) return
          if (result.done) {
            const tail = format.end()
            if (tail) controller.enqueue(bytes.encode(tail))
            controller.close()
            return
          }
          const text = format.item(result.value)
          if (text) return controller.enqueue(bytes.encode(text))
        }
      } catch (error) {
        if (cancelled) return
        const response = errorResponse(error, format.dialect)
        log.warn(`stream failed after the first byte (${response.status}): ${(error as Error).message}`)
        controller.enqueue(bytes.encode(format.fail(await response.text())))
        controller.close()
      }
    },
    async cancel() {
      cancelled = true
      call.abort()
      await Promise.resolve(iterator.return?.(undefined)).catch(() => undefined)
    },
  })
  // x-accel-buffering: reverse proxies (nginx) would otherwise hold the chunks back.
  return new Response(stream, { headers: { 'content-type': format.contentType, 'cache-control': 'no-cache', 'x-accel-buffering': 'no' } })
}

/** Backends that may answer: healthy (or not yet checked) and not draining. */
export function usableStates(ctx: RouteContext): BackendView[] {
  return ctx.deps.engine.backends().filter((s) => s.usable)
}

/**
 * The union of one list over usable backends, asked in parallel (5 s each); a backend that does not
 * answer contributes what the scheduler knows of it. Only models the backend is routed for are listed;
 * the first entry of a name wins (`llama3.2` and `llama3.2:latest` are one model).
 */
async function union<T extends ModelInfo>(
  ctx: RouteContext,
  ask: (state: BackendView, signal: AbortSignal) => Promise<T[]>,
  known: (state: BackendView) => Iterable<string>,
): Promise<T[]> {
  const signal = AbortSignal.any([ctx.request.signal, AbortSignal.timeout(5000)])
  const lists = await Promise.all(
    usableStates(ctx).map(async (state) => {
      const listed = await ask(state, signal).catch(() => undefined)
      const entries = listed ?? [...known(state)].map((name) => ({ name, model: name }) as T)
      return entries.filter((m) => typeof m.name === 'string' && state.serves(m.name))
    }),
  )
  const byName = new Map<string, T>()
  for (const entry of lists.flat()) {
    const key = normalizeModel(entry.name)
    if (!byName.has(key)) byName.set(key, entry)
  }
  return [...byName.values()]
}

export function listModels(ctx: RouteContext): Promise<ModelInfo[]> {
  return union(
    ctx,
    (s, signal) => s.backend.listModels({ signal }),
    (s) => s.modelNames(),
  )
}

export function listLoaded(ctx: RouteContext): Promise<LoadedModel[]> {
  return union<LoadedModel>(
    ctx,
    (s, signal) => s.backend.loadedModels({ signal }),
    (s) => s.loadedModels,
  )
}

/** A JSON object schema (unknown keys kept) whose missing keys read "is required" rather than valibot's type talk. */
export function object<E extends v.ObjectEntries>(entries: E) {
  return v.looseObject(entries, (issue) => (issue.path ? 'is required' : 'expected a JSON object'))
}

/** Drops undefined fields, so canonical requests (and their cache keys) carry only what was sent. */
export function defined<T extends Record<string, unknown>>(value: T): T {
  const out: Record<string, unknown> = {}
  for (const [key, v] of Object.entries(value)) if (v !== undefined) out[key] = v
  return out as T
}
