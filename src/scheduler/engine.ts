/**
 * The engine: one object that `serve`, `batch` and the task runner call to talk to models. Every call goes
 * the same way: response cache (a hit answers at once) → scheduler slot (queue, limits, router, breaker)
 * → backend call with the caller's AbortSignal → outcome to the breaker → slot released → cache filled.
 * Embeddings are coalesced by the batcher when batching is on. The per-model defaults of the config
 * (`models.<provider>.<model>`: temperature, context) are filled into what each backend is sent.
 *
 * Defaults and the cache: a model's defaults depend on the provider (the backend's type), known only once
 * a backend is picked, but the cache is read before routing (a hit must not wait for a slot). So the cache
 * is read with the request resolved for every backend type that may serve the model (the backends serving
 * it; all of them while none does): when those agree (one type, or the same defaults on each) the cache
 * decision and the key see the effective options, and a request without temperature whose model default is
 * 0 is deterministic and meets the entry of the same request sent with temperature 0. When they differ the
 * answer depends on the route, and no entry is read. A chat or generate answer is stored under the key of
 * the request the chosen backend was actually sent; an embedding under the request resolved before routing.
 */
import { createBackends, joinChat, joinGenerate } from '../backends/create.ts'
import type { Backend, ChatChunk, ChatRequest, EmbedRequest, EmbedResponse, GenerateChunk, GenerateRequest } from '../backends/types.ts'
import { BackendError } from '../backends/types.ts'
import {
  type CachedValue,
  type CacheKind,
  cacheKey,
  canonicalRequest,
  createCache,
  isCacheable,
  type ResponseCache,
} from '../cache/index.ts'
import type { OrchConfig } from '../config/schema.ts'
import { type BatchAnswer, EmbedBatcher } from './batcher.ts'
import type { BreakerSync } from './breaker-sync.ts'
import { HealthMonitor } from './health.ts'
import { backendConcurrency } from './limits.ts'
import { type ModelCallKind, ModelDefaultsTable, type ModelRequest } from './model-defaults.ts'
import { type BackendState, normalizeModel } from './router.ts'
import { type Outcome, Scheduler, type SchedulerOptions, type Slot } from './scheduler.ts'

export interface RequestOptions {
  priority?: number
  tenant?: string
  signal?: AbortSignal
  /** false: skip the cache for this request (neither read nor written). */
  cache?: boolean
}

export interface EngineOptions {
  config: OrchConfig
  /** Defaults to the configured backends. */
  backends?: Backend[]
  /** Defaults to the configured cache; null for none. */
  cache?: ResponseCache | null
  now?: () => number
  /** Health checks every this many ms (0: never; default 5000). */
  healthIntervalMs?: number
  /** Share breaker openings and closings with the other instances of a cluster (started and closed with the engine). */
  breakerSync?: BreakerSync
}

/** One backend call, as the metrics see it. Cache hits make no call and are not reported. */
export interface CallEvent {
  backend: string
  model: string
  kind: 'chat' | 'generate' | 'embed'
  /** Waiting for a slot; then from the slot to the end, and to the first chunk (chat, generate). */
  waitedMs: number
  durationMs: number
  ttftMs?: number | undefined
  /** The final chunk's generated tokens and generation time, as the backend reports them. */
  evalCount?: number | undefined
  evalDurationNs?: number | undefined
  /** `cancelled`: the consumer stopped reading before the end (client gone). */
  outcome: 'success' | 'error' | 'cancelled'
}

export type CallObserver = (event: CallEvent) => void

/**
 * A backend as routing sees it now: read-only, for reports and decisions outside the scheduler (health,
 * models, limits, calls in flight). The scheduler alone changes it.
 */
export type BackendView = Readonly<
  Pick<
    BackendState,
    | 'name'
    | 'backend'
    | 'concurrency'
    | 'concurrencySource'
    | 'breaker'
    | 'configuredModels'
    | 'healthy'
    | 'discoveredModels'
    | 'loadedModels'
    | 'inflight'
    | 'served'
    | 'draining'
    | 'suspended'
    | 'usable'
    | 'knowsModels'
    | 'serves'
    | 'modelNames'
  >
>

export interface EngineCounters {
  cache_hits: number
  cache_misses: number
  calls: number
  call_errors: number
}

export class Engine {
  readonly scheduler: Scheduler
  readonly cache: ResponseCache | undefined
  readonly batcher: EmbedBatcher | undefined
  readonly health: HealthMonitor
  readonly counters: EngineCounters = { cache_hits: 0, cache_misses: 0, calls: 0, call_errors: 0 }
  /** The configured per-model defaults (`models.<provider>.<model>`), by backend type and model. */
  readonly modelDefaults: ModelDefaultsTable
  private readonly cacheMode: 'deterministic' | 'always'
  private readonly observers: CallObserver[] = []
  private readonly breakerSync: BreakerSync | undefined
  /** The backends under `backends:`: the ones whose breakers a cluster shares (a pool worker is one machine's). */
  private readonly configuredBackends: ReadonlySet<string>

  constructor(options: EngineOptions) {
    const { config } = options
    const backends = options.backends ?? createBackends(config)
    this.scheduler = new Scheduler(schedulerOptions(config, backends, options.now))
    this.modelDefaults = new ModelDefaultsTable(config.models)
    const caching = config.infrastructure_system.llm_orchestration.caching
    this.cache = options.cache === null ? undefined : (options.cache ?? createCache(caching))
    this.cacheMode = caching.mode
    const batching = config.infrastructure_system.llm_orchestration.batching
    // enabled: false on infrastructure_system is plain single-process execution: no coalescing.
    if (config.infrastructure_system.enabled && batching.enabled) {
      this.batcher = new EmbedBatcher({
        batchSize: batching.batch_size,
        intervalMs: batching.batch_interval_seconds * 1000,
        maxConcurrentBatches: batching.max_concurrent_batches,
        execute: (key, inputs, context) =>
          this.embedCall({ ...(JSON.parse(key.variant) as object), model: key.model, input: inputs }, context),
      })
    }
    this.health = new HealthMonitor(this.scheduler, options.healthIntervalMs ?? 5000)
    this.breakerSync = options.breakerSync
    this.configuredBackends = new Set(config.backends.map((b) => b.name))
  }

  /** The backends routing knows now, in the order they were added (a new array on each call). */
  backends(): BackendView[] {
    return [...this.scheduler.states.values()]
  }

  /** Be told when backends are added, removed or suspended, or their health or models change; returns the unsubscribe. */
  onBackendsChange(listener: () => void): () => void {
    return this.scheduler.onChange(listener)
  }

  /** Whether any backend answered its last health check. */
  hasHealthyBackend(): boolean {
    return this.backends().some((state) => state.healthy === true)
  }

  /** Be told about every backend call when it ends (metrics); returns the unsubscribe. */
  onCall(observer: CallObserver): () => void {
    this.observers.push(observer)
    return () => {
      const at = this.observers.indexOf(observer)
      if (at >= 0) this.observers.splice(at, 1)
    }
  }

  private report(event: CallEvent): void {
    for (const observer of this.observers) {
      try {
        observer(event)
      } catch {
        // A failing observer must not fail the call.
      }
    }
  }

  /** Start health checks (and model discovery) and the breaker sharing; resolves after the first round. */
  async start(): Promise<void> {
    await this.breakerSync?.start(this.scheduler, { shares: (name) => this.configuredBackends.has(name) })
    await this.health.start()
  }

  async close(): Promise<void> {
    this.health.stop()
    this.scheduler.drain(new Error('orch is shutting down'))
    await this.breakerSync?.close()
    await this.cache?.close()
  }

  chat(request: ChatRequest, options: RequestOptions = {}): AsyncIterable<ChatChunk> {
    return this.streamed('chat', request, options, (backend, sent, signal) => backend.chat(sent, { signal }), joinChat)
  }

  generate(request: GenerateRequest, options: RequestOptions = {}): AsyncIterable<GenerateChunk> {
    return this.streamed('generate', request, options, (backend, sent, signal) => backend.generate(sent, { signal }), joinGenerate)
  }

  /** One answer: the chunks joined into the final one. */
  async chatOnce(request: ChatRequest, options: RequestOptions = {}): Promise<ChatChunk> {
    return this.once('chat', request, options, (backend, sent, signal) => backend.chat(sent, { signal }), joinChat)
  }

  async generateOnce(request: GenerateRequest, options: RequestOptions = {}): Promise<GenerateChunk> {
    return this.once('generate', request, options, (backend, sent, signal) => backend.generate(sent, { signal }), joinGenerate)
  }

  async embed(request: EmbedRequest, options: RequestOptions = {}): Promise<EmbedResponse> {
    // Read and stored under the request resolved before routing (the batcher may share one call among
    // callers, so the backend is not known here): where the route decides the options, neither.
    const resolved = this.resolvedBeforeRoute('embed', request)
    const key = resolved ? this.cacheKeyFor('embed', resolved, options) : undefined
    const hit = key ? await this.cacheGet<EmbedResponse>(key) : undefined
    if (hit) return hit
    const inputs = typeof request.input === 'string' ? [request.input] : request.input
    const { model, input: _input, ...rest } = request
    const answer = this.batcher
      ? await this.batcher.add({ model, variant: JSON.stringify(rest) }, inputs, options)
      : await this.embedCall(request, { signal: options.signal, priority: options.priority ?? 0, tenant: options.tenant ?? 'default' })
    const response: EmbedResponse = { model, ...answer }
    if (key) this.cacheSet(key, { kind: 'embed', model, value: response })
    return response
  }

  /** A durable task's work: `chat`, `generate` or `embed` with the task's payload as the request. */
  async run(type: string, payload: unknown, options: RequestOptions = {}): Promise<unknown> {
    if (type === 'chat') return this.chatOnce(payload as ChatRequest, options)
    if (type === 'generate') return this.generateOnce(payload as GenerateRequest, options)
    if (type === 'embed') return this.embed(payload as EmbedRequest, options)
    throw new BackendError(`unknown task type "${type}" (expected chat, generate or embed)`, {
      kind: 'protocol',
      backend: '-',
      retryable: false,
    })
  }

  private async embedCall(
    request: EmbedRequest,
    context: { signal?: AbortSignal; priority: number; tenant: string },
  ): Promise<BatchAnswer> {
    const slot = await this.scheduler.acquire({
      model: request.model,
      priority: context.priority,
      tenant: context.tenant,
      signal: context.signal,
    })
    let outcome: Outcome = 'failure'
    let loadNs: number | undefined
    const started = performance.now()
    try {
      this.counters.calls++
      const response = await slot.backend.embed(this.modelDefaults.apply('embed', slot.backend.type, request), { signal: context.signal })
      outcome = 'success'
      loadNs = response.load_duration
      const tokens = response.prompt_eval_count
      return typeof tokens === 'number'
        ? { embeddings: response.embeddings, prompt_eval_count: tokens }
        : { embeddings: response.embeddings }
    } catch (error) {
      outcome = outcomeOf(error)
      this.counters.call_errors++
      throw error
    } finally {
      slot.release(outcome, { loadMs: nsToMs(loadNs) })
      this.report({
        backend: slot.backend.name,
        model: request.model,
        kind: 'embed',
        waitedMs: slot.waitedMs,
        durationMs: performance.now() - started,
        outcome: outcome === 'success' ? 'success' : 'error',
      })
    }
  }

  /**
   * The request as every backend that may take it would be sent it (defaults filled in), or undefined
   * when that depends on which backend the router picks (backend types with different defaults).
   */
  private resolvedBeforeRoute<R extends ModelRequest>(kind: ModelCallKind, request: R): R | undefined {
    if (!this.modelDefaults.has(request.model)) return request
    const states = [...this.scheduler.states.values()]
    const serving = states.filter((state) => state.serves(request.model))
    const [first, ...others] = new Set((serving.length > 0 ? serving : states).map((state) => state.backend.type))
    if (first === undefined) return request
    const resolved = this.modelDefaults.apply(kind, first, request)
    if (others.length === 0) return resolved
    const canonical = canonicalRequest(kind, resolved)
    return others.every((type) => canonicalRequest(kind, this.modelDefaults.apply(kind, type, request)) === canonical)
      ? resolved
      : undefined
  }

  private cacheKeyFor(kind: CacheKind, request: ChatRequest | GenerateRequest | EmbedRequest, options: RequestOptions): string | undefined {
    if (!this.cache || options.cache === false || !isCacheable(request, this.cacheMode, kind)) return undefined
    return cacheKey(kind, request)
  }

  private async cacheGet<T>(key: string): Promise<T | undefined> {
    const hit = await this.cache?.get(key)
    if (hit) this.counters.cache_hits++
    else this.counters.cache_misses++
    return hit?.value as T | undefined
  }

  /** Store without waiting: a shared cache answers later, and a store it drops costs only a model call. */
  private cacheSet(key: string, entry: Omit<CachedValue, 'created_at'>): void {
    const stored = this.cache?.set(key, entry)
    if (stored) stored.catch(() => undefined)
  }

  private async *streamed<R extends ChatRequest | GenerateRequest, T extends ChatChunk | GenerateChunk>(
    kind: 'chat' | 'generate',
    request: R,
    options: RequestOptions,
    call: (backend: Backend, sent: R, signal: AbortSignal | undefined) => AsyncIterable<T>,
    join: (chunks: T[]) => T,
  ): AsyncGenerator<T> {
    const start = await this.depart<R, T>(kind, request, options)
    if ('hit' in start) {
      yield start.hit
      return
    }
    const { flight, sent } = start
    const chunks: T[] | undefined = flight.key ? [] : undefined
    try {
      // The caller's signal goes to the backend as it is: a consumer that stops early ends the backend's
      // stream by returning it (for-await does), which closes its request.
      for await (const chunk of call(flight.slot.backend, sent, options.signal)) {
        flight.see(chunk)
        chunks?.push(chunk)
        yield chunk
      }
      flight.succeeded(chunks, join)
    } catch (error) {
      flight.failed(error)
      throw error
    } finally {
      flight.land()
    }
  }

  /** A stream read to its end in one loop (no generator in between), its chunks joined. */
  private async once<R extends ChatRequest | GenerateRequest, T extends ChatChunk | GenerateChunk>(
    kind: 'chat' | 'generate',
    request: R,
    options: RequestOptions,
    call: (backend: Backend, sent: R, signal: AbortSignal | undefined) => AsyncIterable<T>,
    join: (chunks: T[]) => T,
  ): Promise<T> {
    const start = await this.depart<R, T>(kind, request, options)
    if ('hit' in start) return join([start.hit])
    const { flight, sent } = start
    const chunks: T[] = []
    try {
      for await (const chunk of call(flight.slot.backend, sent, options.signal)) {
        flight.see(chunk)
        chunks.push(chunk)
      }
      flight.succeeded(chunks, join)
    } catch (error) {
      flight.failed(error)
      throw error
    } finally {
      flight.land()
    }
    return join(chunks)
  }

  /**
   * The start of a chat or generate call: a cache hit, or a slot and the request its backend is sent
   * (defaults filled in), with the flight that tells the cache, the breaker and the metrics how it went.
   */
  private async depart<R extends ChatRequest | GenerateRequest, T extends ChatChunk | GenerateChunk>(
    kind: 'chat' | 'generate',
    request: R,
    options: RequestOptions,
  ): Promise<{ hit: T } | { flight: Flight<T>; sent: R }> {
    const resolved = this.resolvedBeforeRoute(kind, request)
    const readKey = resolved ? this.cacheKeyFor(kind, resolved, options) : undefined
    const hit = readKey ? await this.cacheGet<T>(readKey) : undefined
    if (hit) return { hit }
    const slot: Slot = await this.scheduler.acquire({
      model: request.model,
      priority: options.priority,
      tenant: options.tenant,
      signal: options.signal,
    })
    const sent = this.modelDefaults.apply(kind, slot.backend.type, request)
    // Nothing added on the way (the usual case): the key read before routing is the key to write.
    const key = sent === resolved ? readKey : this.cacheKeyFor(kind, sent, options)
    this.counters.calls++
    const started = performance.now()
    let firstAt: number | undefined
    let last: T | undefined
    // A consumer that stops early (client gone, `break`) ends the call without blaming the backend.
    let outcome: Outcome = 'neutral'
    let ended: CallEvent['outcome'] = 'cancelled'
    const flight: Flight<T> = {
      slot,
      key,
      see(chunk) {
        firstAt ??= performance.now()
        last = chunk
      },
      succeeded: (chunks, join) => {
        outcome = 'success'
        ended = 'success'
        if (key && chunks?.at(-1)?.done) this.cacheSet(key, { kind, model: request.model, value: join(chunks) })
      },
      failed: (error) => {
        outcome = outcomeOf(error)
        ended = 'error'
        this.counters.call_errors++
      },
      land: () => {
        slot.release(outcome, { loadMs: nsToMs(last?.load_duration) })
        this.report({
          backend: slot.backend.name,
          model: request.model,
          kind,
          waitedMs: slot.waitedMs,
          durationMs: performance.now() - started,
          ttftMs: firstAt === undefined ? undefined : firstAt - started,
          evalCount: last?.eval_count,
          evalDurationNs: last?.eval_duration,
          outcome: ended,
        })
      },
    }
    return { flight, sent }
  }
}

/** One chat or generate call from its slot to its end. */
interface Flight<T> {
  readonly slot: Slot
  /** Where its joined answer goes in the cache; undefined: not cached. */
  readonly key: string | undefined
  /** A chunk came. */
  see(chunk: T): void
  /** The stream ended; a complete one (last chunk `done`) is cached when `key` is set. */
  succeeded(chunks: T[] | undefined, join: (chunks: T[]) => T): void
  failed(error: unknown): void
  /** Release the slot (the outcome feeds the breaker) and report the call, whatever happened. */
  land(): void
}

function nsToMs(ns: number | undefined): number | undefined {
  return typeof ns === 'number' && Number.isFinite(ns) ? ns / 1e6 : undefined
}

/** What a failed call says about the backend: its own fault (breaker) or the request's / caller's (neutral). */
function outcomeOf(error: unknown): Outcome {
  if (error instanceof BackendError) return error.retryable ? 'failure' : 'neutral'
  return 'failure'
}

export function schedulerOptions(config: OrchConfig, backends: Backend[], now?: () => number): SchedulerOptions {
  const configured = new Map(config.backends.map((b) => [b.name, b]))
  const serialModels = new Set<string>()
  for (const models of Object.values(config.models)) {
    for (const [name, settings] of Object.entries(models)) if (!settings.parallel) serialModels.add(normalizeModel(name))
  }
  return {
    backends: backends.map((backend) => {
      const cfg = configured.get(backend.name)
      const limit = backendConcurrency(config, cfg?.type ?? backend.type, cfg?.concurrency)
      return {
        backend,
        concurrency: limit.concurrency,
        concurrencySource: limit.source,
        ...(cfg?.models ? { configuredModels: cfg.models } : {}),
      }
    }),
    serialModels,
    maxQueue: config.pool_max_queue_size,
    queueTimeoutMs: config.pool_queue_timeout,
    agingMs: config.tasks.priority_aging_ms,
    breaker: {
      enabled: config.circuit_breaker.enabled,
      failureThreshold: config.circuit_breaker.failure_threshold,
      resetTimeoutMs: config.circuit_breaker.reset_timeout_ms,
      waitForClose: config.circuit_breaker.wait_for_close,
    },
    ...(now ? { now } : {}),
  }
}
