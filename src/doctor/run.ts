/**
 * The doctor's edges: gather the facts (files, sockets, HTTP, child processes), each with a short timeout and
 * all at once, then let the pure planners in checks.ts judge them. Nothing here changes the machine: the state
 * directory is probed with a temp file that is removed, and state.db is only read.
 */
import { Database } from 'bun:sqlite'
import { accessSync, constants, existsSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { hostname, networkInterfaces } from 'node:os'
import { dirname, resolve } from 'node:path'
import { createBackends } from '../backends/create.ts'
import { BackendError } from '../backends/types.ts'
import { resolveSettings, scanLocks } from '../batch/tick.ts'
import { readEnvironment } from '../config/env.ts'
import { displayPath, type ResolvedConfig, resolveConfig } from '../config/load.ts'
import type { OrchConfig } from '../config/schema.ts'
import { ConfigError, OrchError } from '../core/errors.ts'
import { DEFAULT_HOME, serveRecordPath, stateDbPath, writeProbePath } from '../core/home.ts'
import { isAlive } from '../core/process.ts'
import { readPidFile } from '../daemon/pidfile.ts'
import { readGguf } from '../engine/gguf.ts'
import { loadNodeLlamaCpp } from '../engine/llama.ts'
import { detectGpus } from '../pool/gpu.ts'
import { monitoringEnabled } from '../scale/manifests-monitoring.ts'
import { connectRedis, redactUrl, redisSettings, usesRedis, waitReady } from '../store/redis.ts'
import type { BackendFacts, BatchLockFacts, ConfigFacts, DoctorFacts, ExecutableFacts, HomeFacts, PortFacts, RedisFacts } from './checks.ts'
import type { EngineFacts, EngineLoadFacts, LlamacppPoolFacts } from './checks-engine.ts'
import { type PrometheusFacts, prometheusInstances } from './checks-prometheus.ts'

export interface GatherInputs {
  configFile?: string
  envName?: string
  home?: string
  cwd?: string
  /** Environment for the resolver and for child processes (PATH); defaults to process.env. */
  env?: Record<string, string | undefined>
  /** Per network or process probe. */
  timeoutMs?: number
}

const message = (error: unknown) => (error instanceof Error ? error.message : String(error))

function readConfig(inputs: GatherInputs, env: Record<string, string | undefined>, cwd: string) {
  try {
    const resolved = resolveConfig({ cwd, env, configFile: inputs.configFile, envName: inputs.envName, home: inputs.home })
    const facts: ConfigFacts = { files: resolved.files.map((f) => displayPath(f, cwd)), issues: [], warnings: resolved.warnings }
    return { resolved, facts, home: resolved.home }
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    const files = [...new Set(error.issues.map((i) => i.file).filter((f): f is string => f !== undefined))]
    const home = resolve(cwd, inputs.home ?? readEnvironment(env).home ?? DEFAULT_HOME)
    return { resolved: undefined, facts: { files, issues: error.issues, warnings: [] } as ConfigFacts, home }
  }
}

/** The directory itself, or its nearest ancestor that exists. */
function nearestExisting(path: string): string {
  let at = path
  while (!existsSync(at) && dirname(at) !== at) at = dirname(at)
  return at
}

export function gatherHome(home: string): HomeFacts {
  const facts: HomeFacts = { path: home, exists: existsSync(home), writable: false }
  try {
    if (facts.exists) {
      const probe = writeProbePath(home, process.pid)
      writeFileSync(probe, '')
      rmSync(probe, { force: true })
    } else accessSync(nearestExisting(home), constants.W_OK)
    facts.writable = true
  } catch (error) {
    facts.error = message(error)
  }
  const file = stateDbPath(home)
  if (!existsSync(file)) return facts
  let db: Database | undefined
  try {
    db = new Database(file, { readwrite: true, create: false })
    const rows = db.query('PRAGMA integrity_check').all() as Record<string, string>[]
    facts.integrity = rows.map((row) => String(Object.values(row)[0]))
  } catch (error) {
    facts.dbError = message(error)
  } finally {
    db?.close()
  }
  return facts
}

export function gatherDisk(home: string): DoctorFacts['disk'] {
  const path = nearestExisting(home)
  try {
    const stats = statfsSync(path)
    return { path, freeBytes: Number(stats.bavail) * Number(stats.bsize) }
  } catch (error) {
    return { path, freeBytes: undefined, error: message(error) }
  }
}

/** Soft RLIMIT_NOFILE from /proc/self/limits (Linux); undefined elsewhere. */
export function readOpenFileLimit(text?: string): number | undefined {
  let limits = text
  if (limits === undefined) {
    try {
      limits = readFileSync('/proc/self/limits', 'utf8')
    } catch {
      return undefined
    }
  }
  const soft = /^Max open files\s+(\S+)/m.exec(limits)?.[1]
  if (soft === undefined) return undefined
  return soft === 'unlimited' ? Number.POSITIVE_INFINITY : Number(soft)
}

/** Free when this process can listen on it (then closes it at once). */
export function probePort(host: string, port: number): Promise<{ state: 'free' | 'busy'; error?: string }> {
  return new Promise((done) => {
    const server = createServer()
    server.once('error', (error: NodeJS.ErrnoException) => done({ state: 'busy', error: error.code ?? error.message }))
    server.listen({ host, port, exclusive: true }, () => server.close(() => done({ state: 'free' })))
  })
}

export async function gatherPorts(config: OrchConfig, home: string): Promise<PortFacts[]> {
  const info = readPidFile(serveRecordPath(home))
  const serving = info && isAlive(info.pid) ? info : undefined
  const servePort = serving ? Number(new URL(serving.url).port) : undefined
  const { host, port } = config.server
  const serve: PortFacts = { owner: 'serve', key: 'server.port', host, port, ...(await probePort(host, port)) }
  if (serve.state === 'busy' && servePort === port) serve.orchPid = serving?.pid
  const facts = [serve]
  for (const [index, pool] of config.pools.entries()) {
    if (pool.port === undefined) continue
    const ports = Array.from({ length: pool.pool_size }, (_, i) => (pool.port as number) + i).filter((p) => p <= 65535)
    const probes = await Promise.all(ports.map((p) => probePort('127.0.0.1', p)))
    const busyAt = probes.findIndex((p) => p.state === 'busy')
    const at = busyAt < 0 ? 0 : busyAt
    const fact: PortFacts = {
      owner: `pool ${pool.name}`,
      key: `pools[${index}].port`,
      host: '127.0.0.1',
      port: ports[at] ?? pool.port,
      state: 'free',
    }
    if (busyAt >= 0) Object.assign(fact, probes[busyAt], serving ? { orchPid: serving.pid } : {})
    facts.push(fact)
  }
  return facts
}

async function gatherBackends(config: OrchConfig, env: Record<string, string | undefined>, timeoutMs: number): Promise<BackendFacts[]> {
  const backends = createBackends(config, env)
  return Promise.all(
    backends.map(async (backend, index): Promise<BackendFacts> => {
      const cfg = config.backends[index]
      const base = {
        name: backend.name,
        index,
        type: backend.type,
        url: backend.url,
        wanted: cfg?.models ?? [],
        available: [] as string[],
        ...(cfg?.api_key_env ? { apiKeyEnv: { name: cfg.api_key_env, set: Boolean(env[cfg.api_key_env]) } } : {}),
      }
      try {
        const models = await backend.listModels({ signal: AbortSignal.timeout(timeoutMs) })
        return { ...base, reachable: true, available: models.map((m) => m.name) }
      } catch (error) {
        const status = error instanceof BackendError ? error.status : undefined
        return { ...base, reachable: false, error: message(error), unauthorized: status === 401 || status === 403 }
      }
    }),
  )
}

async function programVersion(path: string, env: Record<string, string | undefined>, timeoutMs: number): Promise<string | undefined> {
  const proc = Bun.spawn([path, '--version'], { env, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' })
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs)
  try {
    const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
    return /\d+\.\d+(?:\.\d+)?(?:[-+][\w.]+)?/.exec(`${out}\n${err}`)?.[0]
  } finally {
    clearTimeout(timer)
  }
}

async function gatherPrograms(config: OrchConfig, env: Record<string, string | undefined>, timeoutMs: number): Promise<ExecutableFacts[]> {
  const needed = new Map<string, string[]>()
  for (const pool of config.pools) {
    const program = pool.profile === 'ollama' ? 'ollama' : pool.command?.[0]
    if (program) needed.set(program, [...(needed.get(program) ?? []), pool.name])
  }
  return Promise.all(
    [...needed].map(async ([program, pools]): Promise<ExecutableFacts> => {
      const path = Bun.which(program, { PATH: env.PATH ?? '' }) ?? undefined
      if (path === undefined || program !== 'ollama') return { program, pools, path }
      try {
        const version = await programVersion(path, env, timeoutMs)
        return { program, pools, path, version: version ? `version ${version}` : undefined }
      } catch (error) {
        return { program, pools, path, error: message(error) }
      }
    }),
  )
}

/** Seconds are plenty for a Redis on the network; a doctor run should not wait for a dead one longer. */
const REDIS_TIMEOUT_MS = 2000
const AUTH_REFUSED = /^(NOAUTH|WRONGPASS)/

/**
 * Connect as orch does (src/store/redis.ts), then read what decides whether queued tasks survive: the
 * version, the eviction policy, append-only persistence. The connection error kept is the last one ioredis
 * reported (ECONNREFUSED, NOAUTH, WRONGPASS), as waiting for a connection says only that none came.
 */
export async function gatherRedis(
  config: OrchConfig,
  env: Record<string, string | undefined>,
  timeoutMs = REDIS_TIMEOUT_MS,
): Promise<RedisFacts> {
  const settings = redisSettings(config, env)
  const name = config.infrastructure_system.distributed_simulation.redis_password_env
  const facts: RedisFacts = { url: redactUrl(settings.url), passwordEnv: { name, set: settings.password !== undefined }, reachable: false }
  const client = connectRedis(settings, { name: 'orch-doctor', commandTimeoutMs: timeoutMs })
  let lastError: string | undefined
  // A refused password stays refused: no use waiting out the timeout for it.
  const refused = new Promise<never>((_, reject) =>
    client.on('error', (error: Error) => {
      lastError = error.message
      if (AUTH_REFUSED.test(error.message)) reject(error)
    }),
  )
  try {
    await Promise.race([waitReady(client, settings, timeoutMs), refused])
  } catch (error) {
    client.disconnect()
    return { ...facts, error: lastError ?? message(error) }
  }
  try {
    facts.reachable = true
    facts.version = /^redis_version:(\S+)/m.exec(await client.info('server'))?.[1]
    const get = async (key: string) => ((await client.config('GET', key)) as string[])[1] ?? ''
    try {
      const [maxmemoryPolicy, maxmemory, appendonly, appendfsync] = await Promise.all(
        ['maxmemory-policy', 'maxmemory', 'appendonly', 'appendfsync'].map(get),
      )
      facts.settings = {
        maxmemoryPolicy: maxmemoryPolicy ?? '',
        maxmemory: Number(maxmemory) || 0,
        appendonly: appendonly ?? '',
        appendfsync: appendfsync ?? '',
      }
    } catch (error) {
      facts.configError = message(error)
    }
    return facts
  } catch (error) {
    return { ...facts, reachable: false, error: message(error) }
  } finally {
    client.disconnect()
  }
}

/**
 * Ask the Prometheus at grafana_prometheus.endpoint for every target's `up` (GET /api/v1/query?query=up),
 * and name this orch as Prometheus would label its target (src/doctor/checks-prometheus.ts).
 */
export async function gatherPrometheus(config: OrchConfig, timeoutMs: number): Promise<PrometheusFacts> {
  const endpoint = config.infrastructure_system.performance_monitoring.integrations.grafana_prometheus.endpoint.replace(/\/+$/, '')
  const addresses = Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((a) => a.address))
  const instances = prometheusInstances(config.server, hostname(), addresses)
  const facts: PrometheusFacts = { endpoint, instances, token: Boolean(config.server.token), reachable: false }
  try {
    const response = await fetch(`${endpoint}/api/v1/query?query=up`, { signal: AbortSignal.timeout(timeoutMs) })
    const body = (await response.json().catch(() => undefined)) as
      | { status?: string; error?: string; data?: { result?: Array<{ metric?: Record<string, string>; value?: [number, string] }> } }
      | undefined
    if (!response.ok || body?.status !== 'success' || !Array.isArray(body.data?.result)) {
      return {
        ...facts,
        error: `HTTP ${response.status} from /api/v1/query${body?.error ? `: ${body.error}` : ': not the Prometheus API'}`,
      }
    }
    const up = body.data.result.map((r) => ({ instance: r.metric?.instance ?? '', job: r.metric?.job ?? '', value: r.value?.[1] ?? '' }))
    return { ...facts, reachable: true, up }
  } catch (error) {
    return { ...facts, error: message(error) }
  }
}

/** The `.lock` files under batch.inputs_root; nothing when that folder does not exist (batch not in use). */
export function gatherBatchLocks(config: OrchConfig, cwd: string, now = Date.now()): BatchLockFacts | undefined {
  const settings = resolveSettings(config.batch, cwd)
  if (!existsSync(settings.inputsRoot)) return undefined
  const facts = { inputsRoot: settings.inputsRoot, staleLockSeconds: settings.staleLockSeconds }
  try {
    return { ...facts, locks: scanLocks(settings, now) }
  } catch (error) {
    return { ...facts, locks: [], error: message(error) }
  }
}

/** Loading node-llama-cpp and its binary takes well under a second; a native load that hangs is reported. */
const ENGINE_TIMEOUT_MS = 30_000

/** Load node-llama-cpp from one place, ask which GPU backends it can use and which one it picks, and let go. */
async function gatherEngineLoad(path: string | undefined, pools: string[], timeoutMs: number): Promise<EngineLoadFacts> {
  const facts: EngineLoadFacts = { path, pools }
  let engine: Awaited<ReturnType<typeof loadNodeLlamaCpp>>
  try {
    engine = await loadNodeLlamaCpp(path)
  } catch (error) {
    return { ...facts, error: message(error), ...(error instanceof OrchError && error.hint ? { fix: error.hint } : {}) }
  }
  Object.assign(facts, { from: engine.from, version: engine.version })
  const lib = engine.module
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs)
  })
  try {
    facts.supported = await Promise.race([lib.getLlamaGpuTypes('supported'), timeout])
    const llama = await Promise.race([
      lib.getLlama({
        gpu: 'auto',
        build: 'never',
        skipDownload: true,
        progressLogs: false,
        logLevel: lib.LlamaLogLevel.error,
        logger: () => {},
      }),
      timeout,
    ])
    facts.picked = llama.gpu
    await llama.dispose()
  } catch (error) {
    facts.llamaError = message(error)
  } finally {
    clearTimeout(timer)
  }
  return facts
}

/** The llamacpp pools' engines (one per `llamacpp.node_llama_cpp_path`) and GGUF files; undefined without such a pool. */
export async function gatherEngine(config: OrchConfig, cwd: string, timeoutMs = ENGINE_TIMEOUT_MS): Promise<EngineFacts | undefined> {
  const pools: LlamacppPoolFacts[] = []
  for (const [index, pool] of config.pools.entries()) {
    if (pool.profile !== 'llamacpp') continue
    const settings = pool.llamacpp
    const model = pool.model ?? ''
    const fact: LlamacppPoolFacts = {
      name: pool.name,
      index,
      model,
      path: resolve(cwd, model),
      gpuLayers: settings?.gpu_layers ?? 'auto',
      contextSize: settings?.context_size ?? 'auto',
      parallel: settings?.parallel ?? 1,
      poolSize: pool.pool_size,
      ...(settings?.node_llama_cpp_path ? { enginePath: resolve(cwd, settings.node_llama_cpp_path) } : {}),
    }
    try {
      fact.info = readGguf(fact.path)
    } catch (error) {
      fact.error = message(error)
    }
    pools.push(fact)
  }
  if (pools.length === 0) return undefined
  const paths = [...new Set(pools.map((p) => p.enginePath))]
  const users = (path: string | undefined) => pools.filter((p) => p.enginePath === path).map((p) => p.name)
  // One at a time: two native loads at once gain nothing, and the first usually answers for all.
  const engines: EngineLoadFacts[] = []
  for (const path of paths) engines.push(await gatherEngineLoad(path, users(path), timeoutMs))
  return { engines, pools }
}

/** Every fact the planners need. Config-dependent sections are left out when the configuration is invalid. */
export async function gatherFacts(inputs: GatherInputs = {}): Promise<DoctorFacts> {
  const env = inputs.env ?? process.env
  const cwd = resolve(inputs.cwd ?? process.cwd())
  const timeoutMs = inputs.timeoutMs ?? 4000
  const { resolved, facts: config, home } = readConfig(inputs, env, cwd)
  const cfg: ResolvedConfig['config'] | undefined = resolved?.config
  const pools = (cfg?.pools ?? []).map((p) => ({ name: p.name, pool_size: p.pool_size, gpus: p.gpus }))
  const [detection, ports, backends, programs, redis, engine, prometheus] = await Promise.all([
    detectGpus({ env, timeoutMs: Math.max(timeoutMs, 10_000) }),
    cfg ? gatherPorts(cfg, home) : undefined,
    cfg ? gatherBackends(cfg, env, timeoutMs) : undefined,
    cfg ? gatherPrograms(cfg, env, timeoutMs) : undefined,
    cfg && usesRedis(cfg) ? gatherRedis(cfg, env, Math.min(timeoutMs, REDIS_TIMEOUT_MS)) : undefined,
    cfg ? gatherEngine(cfg, cwd) : undefined,
    cfg && monitoringEnabled(cfg) ? gatherPrometheus(cfg, timeoutMs) : undefined,
  ])
  return {
    bunVersion: typeof Bun === 'undefined' ? undefined : Bun.version,
    config,
    home: gatherHome(home),
    disk: gatherDisk(home),
    openFiles: readOpenFileLimit(),
    gpus: { detection, pools },
    ports,
    backends,
    programs,
    redis,
    engine,
    prometheus,
    batchLocks: cfg ? gatherBatchLocks(cfg, cwd) : undefined,
  }
}
