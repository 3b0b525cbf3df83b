/**
 * A cluster for tests, all real: one redis-server on a free loopback port, `orch serve` instances in this
 * process (real Bun.serve, each its own state directory) and `orch worker` processes spawned from the CLI,
 * each with its own state directory and config file, all on one key prefix. Fake Ollama servers (real wire
 * format) stand in for the model backends.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Subprocess } from 'bun'
import { stringify } from 'yaml'
import { defaultConfig } from '../../src/config/schema.ts'
import { configureLogging } from '../../src/core/log.ts'
import { type RunningServer, startServe } from '../../src/server/serve.ts'
import { spawnCli, tempDir } from './cli.ts'
import type { FakeServer } from './fake-ollama.ts'
import type { RedisServer } from './redis-server.ts'

export type Config = ReturnType<typeof defaultConfig>

export interface ClusterServe {
  server: RunningServer
  url: string
  fetch(path: string, init?: RequestInit): Promise<Response>
  stop(): Promise<void>
}

export interface ClusterWorker {
  proc: Subprocess<'ignore', 'pipe', 'pipe'>
  /** Its lease owner (host:pid:run), from its --json line. */
  id: string
  /** SIGTERM, then wait for it to exit (after draining). */
  stop(): Promise<number>
  kill(): Promise<void>
  /** What it wrote on stderr so far (for failure messages). */
  stderr(): string
}

/** The keys every member shares: the bus, the Redis URL and prefix, leases and timings fit for tests. */
export function clusterConfig(redis: RedisServer, prefix: string, tweak?: (c: Config) => void): Config {
  const config = defaultConfig()
  const d = config.infrastructure_system.distributed_simulation
  d.enabled = true
  d.event_bus_type = 'redis'
  d.redis_url = redis.url
  d.redis_prefix = prefix
  d.agent_runner_concurrency = 8
  config.infrastructure_system.llm_orchestration.caching.cache_backend = 'memory'
  config.infrastructure_system.llm_orchestration.batching.batch_interval_seconds = 0.01
  config.tasks.synchronous = 'NORMAL'
  config.tasks.lease_ms = 1500
  config.graceful_shutdown_timeout_ms = 500
  config.backends = []
  tweak?.(config)
  return config
}

/** An orch serve of the cluster in this process; `runTasks: false` unless it should run tasks too. */
export async function startClusterServe(
  config: Config,
  options: { runTasks?: boolean; backends?: FakeServer[] } = {},
): Promise<ClusterServe> {
  configureLogging({ level: 'error' })
  const dir = tempDir('orch-cluster-serve-')
  const own: Config = structuredClone(config)
  own.infrastructure_system.performance_monitoring.export_path = `${dir.path}/performance_logs`
  if (options.backends)
    own.backends = options.backends.map((f, i) => ({ name: `fake${i}`, type: 'ollama' as const, url: f.url, concurrency: 4 }))
  const server = await startServe({
    config: own,
    home: dir.path,
    version: '0.0.0-test',
    port: 0,
    healthIntervalMs: 0,
    runTasks: options.runTasks ?? false,
  })
  return {
    server,
    url: server.url,
    fetch: (path, init) => fetch(`${server.url}${path}`, init),
    async stop() {
      await server.stop(200)
      dir.cleanup()
    },
  }
}

/** An `orch worker` process of the cluster, running its tasks on `backend`. Resolves once it says it is ready. */
export async function startClusterWorker(config: Config, backend: FakeServer): Promise<ClusterWorker> {
  const dir = tempDir('orch-cluster-worker-')
  const own: Config = structuredClone(config)
  own.backends = [{ name: 'gpu', type: 'ollama', url: backend.url, concurrency: 8 }]
  own.infrastructure_system.performance_monitoring.export_path = `${dir.path}/performance_logs`
  const file = join(dir.path, 'orch.yaml')
  writeFileSync(file, stringify(fileConfig(own)))
  const proc = spawnCli(['worker', '--config', file, '--home', dir.path, '--json', '--log-level', 'warning'])
  let err = ''
  void (async () => {
    const decoder = new TextDecoder()
    for await (const chunk of proc.stderr) err += decoder.decode(chunk)
  })()
  const id = await readyLine(proc, () => err)
  return {
    proc,
    id,
    stderr: () => err,
    async stop() {
      proc.kill('SIGTERM')
      const code = await proc.exited
      dir.cleanup()
      return code
    },
    async kill() {
      proc.kill('SIGKILL')
      await proc.exited
      dir.cleanup()
    },
  }
}

/** The config as a file would hold it: only what differs from the defaults matters, but all of it is valid. */
export function fileConfig(config: Config): Record<string, unknown> {
  const d = config.infrastructure_system.distributed_simulation
  return {
    backends: config.backends,
    tasks: { lease_ms: config.tasks.lease_ms, synchronous: config.tasks.synchronous },
    graceful_shutdown_timeout_ms: config.graceful_shutdown_timeout_ms,
    infrastructure_system: {
      distributed_simulation: {
        enabled: d.enabled,
        event_bus_type: d.event_bus_type,
        redis_url: d.redis_url,
        redis_prefix: d.redis_prefix,
        agent_runner_concurrency: d.agent_runner_concurrency,
      },
      llm_orchestration: { caching: { cache_backend: 'memory' } },
      performance_monitoring: { export_path: config.infrastructure_system.performance_monitoring.export_path },
    },
  }
}

async function readyLine(proc: Subprocess<'ignore', 'pipe', 'pipe'>, stderr: () => string): Promise<string> {
  const reader = proc.stdout.getReader()
  const decoder = new TextDecoder()
  let text = ''
  const deadline = Date.now() + 15_000
  while (Date.now() < deadline) {
    const { value, done } = await reader.read()
    if (done) break
    text += decoder.decode(value)
    try {
      const ready = JSON.parse(text) as { id?: unknown }
      if (typeof ready.id !== 'string') throw new Error(`orch worker did not start: ${text}\n${stderr()}`)
      reader.releaseLock()
      return ready.id
    } catch (error) {
      // Not all of it yet, unless it was all and said something else.
      if (!(error instanceof SyntaxError)) throw error
    }
  }
  throw new Error(`orch worker did not start (exit ${proc.exitCode}):\n${stderr()}`)
}

/** Polls `predicate` every 20 ms until it holds, or fails after `ms` with `what`. */
export async function until(predicate: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`)
    await Bun.sleep(20)
  }
}
