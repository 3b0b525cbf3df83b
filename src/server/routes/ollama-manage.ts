/**
 * Ollama's model management, over the backends: show, pull, create, copy, delete and version. Ollama
 * backends (pool workers included) get the call; OpenAI-compatible servers manage their models
 * themselves, so management calls for models only they serve are refused (501), and /api/show is made up
 * from what orch knows of the model. Which backends a call goes to, and why: docs/http-api.md#ollama-api.
 * After a change the backend's model list is read again at once, so routing and /api/tags follow.
 */
import * as v from 'valibot'
import { type ManagedBackend, managesModels, type ProgressChunk, type ShowResponse } from '../../backends/types.ts'
import type { OrchError } from '../../core/errors.ts'
import type { BackendView } from '../../scheduler/engine.ts'
import type { ModelDefaults } from '../../scheduler/model-defaults.ts'
import { normalizeModel } from '../../scheduler/router.ts'
import { type AppDeps, httpError, json, type Route, type RouteContext, readJson, statusOf } from '../http.ts'
import { ndjson, object, startCall, streamResponse, usableStates } from './compat.ts'

/**
 * What /api/version reports when no Ollama backend answers (only OpenAI-compatible backends, or none up):
 * Ollama 0.12.0, a release that has every request field orch's Ollama endpoints accept.
 */
export const FALLBACK_OLLAMA_VERSION = '0.12.0'

const named = v.optional(v.string('expected a model name'))
// Ollama takes the name as `model` or the older `name` (the ollama client's pull and delete send `name`).
const ShowBody = object({ model: named, name: named, verbose: v.optional(v.boolean()) })
const PullBody = object({ model: named, name: named, insecure: v.optional(v.boolean()), stream: v.optional(v.boolean(), true) })
const CreateBody = object({ model: named, name: named, from: named, stream: v.optional(v.boolean(), true) })
const DeleteBody = object({ model: named, name: named })
const required = v.pipe(v.string('a model name is required'), v.nonEmpty('a model name is required'))
const CopyBody = object({ source: required, destination: required })

type Managed = BackendView & { backend: ManagedBackend }

/** Backends that may answer: healthy (or not yet checked) and not draining. */

const isManaged = (s: BackendView): s is Managed => managesModels(s.backend)

/** `model`, else `name`; neither is a 400 naming `model`. */
function modelOf(body: { model?: string | undefined; name?: string | undefined }): string {
  const model = body.model || body.name
  if (!model) throw httpError(400, 'model: a model name is required, got nothing', 'E_VALIDATION', { field: 'model' })
  return model
}

/** Ollama's own words for a model it does not have. */
const notFound = (model: string, quote = (m: string) => `'${m}'`) => httpError(404, `model ${quote(model)} not found`, 'E_MODEL_NOT_FOUND')

const isNotFound = (error: unknown) => statusOf(error) === 404

/** Whether a backend has the model on disk, as far as orch knows (unknown until its first model list: maybe). */
function holds(state: BackendView, model: string): boolean {
  return state.discoveredModels === undefined || state.discoveredModels.has(normalizeModel(model))
}

/** The OpenAI-compatible backends known to serve the model (from their model list or config). */
function openaiServing(ctx: RouteContext, model: string): BackendView[] {
  return usableStates(ctx).filter((s) => !isManaged(s) && s.knowsModels && s.serves(model))
}

/** 501: the model lives on OpenAI-compatible servers, which orch cannot manage. */
function unmanaged(model: string | undefined, backends: BackendView[], what: string): OrchError {
  const names = backends.map((s) => s.name).join(', ')
  const subject = model
    ? `"${model}" is served only by OpenAI-compatible backends (${names})`
    : `the backends (${names}) are OpenAI-compatible`
  return httpError(
    501,
    `cannot ${what}: ${subject}, and orch manages models only on Ollama backends; manage them on those servers directly`,
    'E_NOT_MANAGED',
  )
}

/**
 * The Ollama backends a pull (or a create without `from`) goes to: those whose `models` in the config
 * name the model; else every Ollama backend without a `models` list (each may then serve it). Refused
 * when the model is known only on OpenAI-compatible backends, or no Ollama backend may hold it.
 */
function pullTargets(ctx: RouteContext, model: string, what: string): Managed[] {
  const states = ctx.deps.engine.backends().filter((s) => !s.draining)
  const ollama = states.filter(isManaged)
  const key = normalizeModel(model)
  let targets = ollama.filter((s) => s.configuredModels?.has(key))
  if (targets.length === 0) {
    const elsewhere = openaiServing(ctx, model)
    if (elsewhere.length > 0 && !ollama.some((s) => s.knowsModels && s.serves(model))) throw unmanaged(model, elsewhere, what)
    targets = ollama.filter((s) => s.configuredModels === undefined)
  }
  if (targets.length === 0) {
    if (ollama.length === 0) throw unmanaged(undefined, states, what)
    const lists = ollama.map((s) => `${s.name} (${s.modelNames().join(', ')})`).join('; ')
    throw httpError(
      400,
      `cannot ${what}: every Ollama backend is restricted to the models its config lists, and none lists "${model}": ${lists}; add "${model}" to a backend's models in the config`,
      'E_NOT_CONFIGURED',
    )
  }
  const up = targets.filter((s) => s.usable)
  if (up.length === 0) {
    throw httpError(
      503,
      `cannot ${what}: no Ollama backend that would hold "${model}" answers (${targets.map((s) => s.name).join(', ')})`,
      'E_NO_BACKEND',
      {},
      { retryable: true, retryAfterS: 5 },
    )
  }
  return up
}

export function ollamaManageRoutes(deps: AppDeps): Route[] {
  const { engine } = deps
  /** Read the backend's models again now, so routing and /api/tags see the change. */
  const refresh = (states: BackendView[]) => Promise.all(states.map((s) => engine.health.check(s.name)))

  return [
    {
      method: 'POST',
      path: '/api/show',
      handler: async (ctx) => {
        const { name, ...body } = await readJson(ctx, ShowBody)
        const model = modelOf({ model: body.model, name })
        const serving = usableStates(ctx).filter((s) => s.serves(model))
        let failure: unknown
        for (const state of serving.filter(isManaged)) {
          try {
            return json(await state.backend.manage.show({ ...body, model }, { signal: ctx.request.signal }))
          } catch (error) {
            if (!isNotFound(error)) failure ??= error
          }
        }
        // An OpenAI-compatible backend whose model list (or config) has it: made up from what is known.
        const other = serving.find((s) => !isManaged(s) && s.knowsModels)
        if (other) {
          const signal = AbortSignal.any([ctx.request.signal, AbortSignal.timeout(5000)])
          const listed = await other.backend.listModels({ signal }).catch(() => [])
          const entry = listed.find((m) => normalizeModel(m.name) === normalizeModel(model))
          const modifiedAt = entry?.modified_at ?? new Date(deps.startedAt).toISOString()
          return json(synthesisedShow(model, other, modifiedAt, engine.modelDefaults.get(other.backend.type, model)))
        }
        if (failure) throw failure
        throw notFound(model)
      },
    },
    {
      method: 'POST',
      path: '/api/pull',
      long: true,
      handler: async (ctx) => {
        const body = await readJson(ctx, PullBody)
        const model = modelOf(body)
        const what = `pull "${model}"`
        const targets = pullTargets(ctx, model, what)
        const request = { model, ...(body.insecure !== undefined ? { insecure: body.insecure } : {}) }
        return progressAnswer(ctx, body.stream, targets, what, refresh, (s, signal) => s.backend.manage.pull(request, { signal }))
      },
    },
    {
      method: 'POST',
      path: '/api/create',
      long: true,
      handler: async (ctx) => {
        const body = await readJson(ctx, CreateBody)
        const model = modelOf(body)
        const { name: _name, stream, ...request } = body
        const what = `create "${model}"`
        let targets: Managed[]
        if (body.from) {
          const from = body.from
          targets = usableStates(ctx).filter((s): s is Managed => isManaged(s) && holds(s, from))
          const elsewhere = openaiServing(ctx, from)
          if (targets.length === 0 && elsewhere.length > 0) throw unmanaged(from, elsewhere, what)
          if (targets.length === 0) throw notFound(from)
        } else {
          targets = pullTargets(ctx, model, what)
        }
        return progressAnswer(ctx, stream, targets, what, refresh, (s, signal) =>
          s.backend.manage.create({ ...request, model }, { signal }),
        )
      },
    },
    {
      method: 'POST',
      path: '/api/copy',
      handler: async (ctx) => {
        const { source, destination } = await readJson(ctx, CopyBody)
        await onEvery(
          ctx,
          source,
          `copy "${source}"`,
          refresh,
          (s, signal) => s.backend.manage.copy(source, destination, { signal }),
          (m) => notFound(m, (x) => JSON.stringify(x)),
        )
        return new Response(null, { status: 200 })
      },
    },
    {
      method: 'DELETE',
      path: '/api/delete',
      handler: async (ctx) => {
        const model = modelOf(await readJson(ctx, DeleteBody))
        await onEvery(ctx, model, `delete "${model}"`, refresh, (s, signal) => s.backend.manage.delete(model, { signal }), notFound)
        return new Response(null, { status: 200 })
      },
    },
    {
      method: 'GET',
      path: '/api/version',
      handler: async (ctx) => {
        const signal = AbortSignal.any([ctx.request.signal, AbortSignal.timeout(5000)])
        const asked = usableStates(ctx)
          .filter(isManaged)
          .map((s) => s.backend.manage.version({ signal }).catch(() => undefined))
        const versions = (await Promise.all(asked)).filter((x): x is string => typeof x === 'string' && x !== '')
        return json({ version: lowestVersion(versions) ?? FALLBACK_OLLAMA_VERSION, orch_version: deps.version })
      },
    },
  ]
}

/**
 * Runs a copy or delete on every Ollama backend that has `model`. Done when at least one did it and none
 * failed otherwise; a 404 from all is Ollama's 404. Models only on OpenAI-compatible backends: 501.
 */
async function onEvery(
  ctx: RouteContext,
  model: string,
  what: string,
  refresh: (states: BackendView[]) => Promise<unknown>,
  run: (state: Managed, signal: AbortSignal) => Promise<void>,
  missing: (model: string) => OrchError,
): Promise<void> {
  const targets = usableStates(ctx).filter((s): s is Managed => isManaged(s) && holds(s, model))
  if (targets.length === 0) {
    const elsewhere = openaiServing(ctx, model)
    throw elsewhere.length > 0 ? unmanaged(model, elsewhere, what) : missing(model)
  }
  const results = await Promise.allSettled(targets.map((s) => run(s, ctx.request.signal)))
  const done = targets.filter((_, i) => results[i]?.status === 'fulfilled')
  const failed = results.flatMap((r, i) =>
    r.status === 'rejected' && !isNotFound(r.reason) ? [{ state: targets[i] as Managed, error: r.reason }] : [],
  )
  if (done.length > 0) await refresh(targets)
  if (failed.length === 0 && done.length > 0) return
  if (failed.length === 0) throw missing(model)
  if (failed.length === 1 && done.length === 0) throw failed[0]?.error
  throw partialFailure(what, failed, done)
}

function partialFailure(what: string, failed: { state: BackendView; error: unknown }[], done: BackendView[]): OrchError {
  const reasons = failed.map((f) => (f.error as Error).message).join('; ')
  const succeeded = done.length > 0 ? ` (done on ${done.map((s) => s.name).join(', ')})` : ''
  return httpError(
    502,
    `${what} failed on ${failed.map((f) => f.state.name).join(', ')}${succeeded}: ${reasons}`,
    'E_BACKEND_FAILED',
    {},
    { retryable: true },
  )
}

/** A pull's or a create's answer: NDJSON progress (or, with `stream: false`, its last line) over every target. */
async function progressAnswer(
  ctx: RouteContext,
  stream: boolean,
  targets: Managed[],
  what: string,
  refresh: (states: BackendView[]) => Promise<unknown>,
  open: (state: Managed, signal: AbortSignal) => AsyncIterable<ProgressChunk>,
): Promise<Response> {
  const call = startCall(ctx)
  const signal = call.options.signal as AbortSignal
  const lines = mergeProgress(targets, what, (s) => open(s, signal), refresh)
  if (stream) return streamResponse(lines, ndjson, call)
  let last: ProgressChunk | undefined
  for await (const line of lines) last = line
  return json(last)
}

/**
 * The progress of one call on several backends as one stream, as a client of one Ollama expects it: a
 * layer's `total` and `completed` are the sums over the backends pulling it; a status without a layer is
 * said once; `success` comes once, at the end, after every backend's model list was read again. A backend
 * that fails ends the stream with an error naming it once the others are done.
 */
async function* mergeProgress<T extends BackendView>(
  targets: T[],
  what: string,
  open: (state: T) => AsyncIterable<ProgressChunk>,
  refresh: (states: BackendView[]) => Promise<unknown>,
): AsyncGenerator<ProgressChunk> {
  const layers = new Map<string, Map<number, { total: number; completed: number | undefined }>>()
  const said = new Map<string, number>()
  const failed: { state: BackendView; error: unknown }[] = []
  const done: BackendView[] = []
  for await (const event of interleave(targets.map(open))) {
    const state = targets[event.at] as T
    if (event.kind === 'end') {
      done.push(state)
      await refresh([state])
      continue
    }
    if (event.kind === 'error') {
      failed.push({ state, error: event.error })
      continue
    }
    const line = event.value
    if (line.status === 'success') continue
    if (line.digest) {
      const per = layers.get(line.digest) ?? new Map()
      layers.set(line.digest, per)
      per.set(event.at, { total: line.total ?? 0, completed: line.completed })
      const parts = [...per.values()]
      const completed = parts.some((p) => p.completed !== undefined) ? parts.reduce((n, p) => n + (p.completed ?? 0), 0) : undefined
      const total = parts.reduce((n, p) => n + p.total, 0)
      yield { status: line.status, digest: line.digest, ...(total ? { total } : {}), ...(completed !== undefined ? { completed } : {}) }
      continue
    }
    const first = said.get(line.status)
    if (first !== undefined && first !== event.at) continue
    said.set(line.status, event.at)
    yield line
  }
  if (failed.length === 1 && done.length === 0) throw failed[0]?.error
  if (failed.length > 0) throw partialFailure(what, failed, done)
  yield { status: 'success' }
}

type Event<T> = { at: number; kind: 'value'; value: T } | { at: number; kind: 'end' } | { at: number; kind: 'error'; error: unknown }

/** Items of several async iterables as they come, each tagged with its source; ends when all have. */
async function* interleave<T>(sources: AsyncIterable<T>[]): AsyncGenerator<Event<T>> {
  const iterators = sources.map((s) => s[Symbol.asyncIterator]())
  const next = (at: number): Promise<Event<T>> =>
    (iterators[at] as AsyncIterator<T>).next().then(
      (r): Event<T> => (r.done ? { at, kind: 'end' } : { at, kind: 'value', value: r.value }),
      (error: unknown): Event<T> => ({ at, kind: 'error', error }),
    )
  const pending = new Map(iterators.map((_, at) => [at, next(at)]))
  try {
    while (pending.size > 0) {
      const event = await Promise.race(pending.values())
      if (event.kind === 'value') pending.set(event.at, next(event.at))
      else pending.delete(event.at)
      yield event
    }
  } finally {
    // Ended early (the client left): the rest are closed; their calls end with the request's signal.
    for (const at of pending.keys()) void iterators[at]?.return?.()?.catch(() => undefined)
  }
}

/**
 * /api/show for a model on an OpenAI-compatible backend, in Ollama's shape: such servers report no
 * Modelfile, template, family or quantization, so those are Ollama's empty values. `parameters` lists the
 * model's configured settings (models.openai.<model>.context as num_ctx, temperature), one per line as
 * Ollama writes them.
 */
function synthesisedShow(model: string, state: BackendView, modifiedAt: string, defaults: ModelDefaults | undefined): ShowResponse {
  const parameters = [
    ...(defaults?.context === undefined ? [] : [`num_ctx ${defaults.context}`]),
    ...(defaults?.temperature === undefined ? [] : [`temperature ${defaults.temperature}`]),
  ]
  return {
    license: '',
    modelfile: `# ${model} is served by the OpenAI-compatible backend ${state.name}, which reports no Modelfile\nFROM ${model}\n`,
    parameters: parameters.join('\n'),
    template: '',
    details: { parent_model: '', format: '', family: '', families: null, parameter_size: '', quantization_level: '' },
    model_info: {},
    capabilities: ['completion'],
    modified_at: modifiedAt,
  }
}

/** The lowest of Ollama version strings (`0.12.3`, `0.13.0-rc1`): numbers compared as numbers, a pre-release below its release. */
export function lowestVersion(versions: string[]): string | undefined {
  return [...versions].sort(compareVersions)[0]
}

export function compareVersions(a: string, b: string): number {
  const parse = (x: string) => {
    const [core = '', pre] = x.replace(/^v/, '').split('-', 2)
    return { parts: core.split('.').map((p) => Number.parseInt(p, 10) || 0), pre }
  }
  const pa = parse(a)
  const pb = parse(b)
  for (let i = 0; i < Math.max(pa.parts.length, pb.parts.length); i++) {
    const d = (pa.parts[i] ?? 0) - (pb.parts[i] ?? 0)
    if (d !== 0) return d
  }
  if (pa.pre === pb.pre) return 0
  if (pa.pre === undefined) return 1
  if (pb.pre === undefined) return -1
  return pa.pre < pb.pre ? -1 : 1
}
