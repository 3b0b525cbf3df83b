/**
 * `orch serve` as a library: open the state store, start the engine (health checks, model discovery), the
 * durable task runner, metrics, workflows, pools and the HTTP server; stop them in the reverse order. Tests
 * start it on port 0.
 */
import { hostname } from 'node:os'
import type { Backend } from '../backends/types.ts'
import type { OrchConfig } from '../config/schema.ts'
import { ConfigError, OrchError } from '../core/errors.ts'
import { logger } from '../core/log.ts'
import type { RequestRecord } from '../metrics/engine-metrics.ts'
import { startMetrics } from '../metrics/service.ts'
import { checkScaleBounds, type ScaledPools, startScaledPools } from '../scale/start.ts'
import type { Engine } from '../scheduler/engine.ts'
import { effectiveLimits, formatLimits, taskRunnerLimit } from '../scheduler/limits.ts'
import { openStore, type Store } from '../store/db.ts'
import { openTaskBacking, startEngine } from '../tasks/open.ts'
import { ownerId } from '../tasks/owner.ts'
import { TaskRunner } from '../tasks/runner.ts'
import { startHeartbeat } from '../tasks/workers.ts'
import { WorkflowService } from '../workflows/service.ts'
import { WorkflowStore } from '../workflows/store.ts'
import { type App, type AppOptions, createApp } from './app.ts'
import type { AppDeps } from './http.ts'
import { defaultRoutes } from './routes/index.ts'
import { UI_PAGES } from './routes/ui.ts'

export interface ServeOptions {
  config: OrchConfig
  home: string
  version: string
  /** Override server.host / server.port (flags); port 0 picks a free one. */
  host?: string
  port?: number
  /** Instead of the configured backends (tests). */
  backends?: Backend[]
  healthIntervalMs?: number
  appOptions?: AppOptions
  /**
   * false: run no durable task here (orch serve --no-tasks: a cluster's control plane, its tasks run by
   * orch worker). Expired leases are still recovered. Default true.
   */
  runTasks?: boolean
}

export interface RunningServer {
  url: string
  host: string
  port: number
  app: App
  deps: AppDeps
  store: Store
  runner: TaskRunner
  /** Stop accepting, let running work finish within `graceMs`, hand the rest back to the queue, close. */
  stop(graceMs?: number): Promise<void>
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|::1|\[::1\])$/

/** Fewest characters of a token that guards a server reachable from the network. */
export const MIN_NETWORK_TOKEN_LENGTH = 16

/**
 * Binding beyond loopback without a token would expose the models to the network, and a short token is
 * guessed as easily: refuse both, with the reason.
 */
export function checkBind(host: string, token: string | undefined): void {
  if (LOOPBACK.test(host)) return
  const hint = 'set server.token (or ORCH_SERVER_TOKEN) to a long random value, e.g. `openssl rand -hex 24`, or bind to 127.0.0.1'
  if (!token) {
    throw new ConfigError(
      [{ path: 'server.token', message: `required to bind to ${host}: any host on the network could use your models` }],
      {
        hint,
      },
    )
  }
  if (token.length < MIN_NETWORK_TOKEN_LENGTH) {
    const message = `must be at least ${MIN_NETWORK_TOKEN_LENGTH} characters to bind to ${host}, got ${token.length}`
    throw new ConfigError([{ path: 'server.token', message }], { hint })
  }
}

export async function startServe(options: ServeOptions): Promise<RunningServer> {
  const { config } = options
  const host = options.host ?? config.server.host
  const port = options.port ?? config.server.port
  checkBind(host, config.server.token)
  checkScaleBounds(config)
  const log = logger('http')
  const store = openStore(options.home, { synchronous: config.tasks.synchronous })
  const backing = await openTaskBacking(config, store)
  const { tasks, bus, cluster } = backing
  const engine = await startEngine(backing, config, options)
  reportBackends(engine)
  const runId = crypto.randomUUID().slice(0, 8)
  const runnerLimit = taskRunnerLimit(config).concurrency
  const owner = ownerId(runId)
  const runner = new TaskRunner({
    tasks,
    engine,
    owner,
    leaseMs: config.tasks.lease_ms,
    limit: runnerLimit,
    ...(cluster ? { bus, claimServedModels: true } : {}),
    ...(options.runTasks === false ? { maxActive: 0 } : {}),
  })
  logger('scheduler').info(formatLimits(effectiveLimits(engine.backends(), config)))
  await runner.start()
  const startedAt = Date.now()
  const heartbeat = cluster
    ? startHeartbeat(cluster.registry, () => ({
        id: owner,
        role: 'serve',
        host: hostname(),
        pid: process.pid,
        running: runner.activeCount,
        concurrency: options.runTasks === false ? 0 : runnerLimit,
        started_at: startedAt,
        pools: config.pools.map((p) => p.name),
      }))
    : undefined
  const instance = hostname()
  const { version } = options
  // Metrics, workflows (runs left in flight continue: the runner takes their tasks), pools in the background;
  // stopServices stops them in the reverse order.
  let scaled: ScaledPools | undefined
  const metrics = startMetrics({
    config,
    engine,
    tasks,
    instance,
    version,
    scaling: () => scaled?.autoscaler.status(),
    workers: () => scaled?.pools.supervisor.workers ?? [],
    ...(cluster ? { runners: cluster.registry } : {}),
  })
  const workflows = new WorkflowService({ store: new WorkflowStore(store), tasks, bus })
  workflows.start()
  scaled = await startScaledPools({
    config,
    home: options.home,
    store,
    scheduler: engine.scheduler,
    backing,
  })
  const pools = scaled?.pools
  const stopServices = async () => {
    await heartbeat?.stop()
    await scaled?.stop()
    await workflows.stop()
    await metrics.stop()
  }
  const deps: AppDeps = {
    config,
    engine,
    store,
    tasks,
    bus,
    version,
    instance,
    startedAt,
    metrics,
    workflows,
    home: options.home,
    ...(pools ? { pools: pools.supervisor } : {}),
    ...(scaled ? { scale: scaled.autoscaler } : {}),
    ...(cluster ? { runners: cluster.registry } : {}),
  }
  const onRequest = (record: RequestRecord) => {
    metrics.onRequest(record)
    options.appOptions?.onRequest?.(record)
  }
  const app = createApp(deps, defaultRoutes(deps), { onRequest })
  let server: ReturnType<typeof Bun.serve>
  try {
    server = Bun.serve({
      hostname: host,
      port,
      // The dashboard's page and its bundled assets (no data: that comes from the gated API, docs/dashboard.md).
      routes: UI_PAGES,
      fetch: (request, bunServer) => app.fetch(request, bunServer),
      // Nothing the runtime would answer on its own (its development error page shows code and paths).
      error: (error) => app.fail(error),
      development: false,
      // Bun's production mode sets SO_REUSEPORT, so a second orch serve on the same port would share it
      // silently (the kernel splitting connections between two servers); a taken port must fail instead.
      reusePort: false,
      // The app answers bodies over body_limit_bytes with a JSON 413 (by Content-Length, before reading); Bun's
      // own cap, above it, only stops what the app would otherwise have to count through.
      maxRequestBodySize: config.server.body_limit_bytes + 1024 * 1024,
      // Silent connections (idle keep-alive, headers or a body that stop short) are closed; routes that may
      // be quiet for long (streams, SSE, model calls) lift it for their own request (Route.long).
      idleTimeout: config.server.idle_timeout_s,
    })
  } catch (cause) {
    await stopServices()
    await runner.stop()
    await engine.close()
    await backing.close()
    store.close()
    throw new OrchError(`cannot listen on ${host}:${port}: ${(cause as Error).message}`, {
      code: 'E_LISTEN',
      hint: 'another process (another orch serve?) holds the port; pick one with --port, or stop it (orch stop)',
      cause,
    })
  }
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${server.port}`
  log.info(`orch serve listening on ${url} (state ${options.home})`)
  let stopped = false
  return {
    url,
    host,
    port: server.port as number,
    app,
    deps,
    store,
    runner,
    async stop(graceMs = config.graceful_shutdown_timeout_ms) {
      if (stopped) return
      stopped = true
      const closing = server.stop(false)
      await runner.stop(graceMs)
      // A timer, not Bun.sleep: the losing side of the race must not keep the process alive for graceMs.
      let timer: ReturnType<typeof setTimeout> | undefined
      await Promise.race([closing, new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))])
      clearTimeout(timer)
      await server.stop(true)
      await stopServices()
      await engine.close()
      await backing.close()
      store.close()
    },
  }
}

function reportBackends(engine: Engine): void {
  const log = logger('scheduler')
  const states = engine.backends()
  const healthy = states.filter((s) => s.healthy === true)
  if (healthy.length > 0) {
    log.info(`backends: ${states.map((s) => `${s.name} ${s.healthy ? 'ok' : 'down'} (${s.backend.url})`).join(', ')}`)
    return
  }
  const where = states.map((s) => s.backend.url).join(', ') || 'none configured'
  log.warn(
    `no model backend answers (${where}). orch serve runs anyway and queues work until one does.\n` +
      '  start one:  ollama serve\n' +
      '  or add one: backends: [{ name: gpu1, type: ollama, url: http://10.0.0.5:11434 }] in orch.yaml (orch config init)',
  )
}
