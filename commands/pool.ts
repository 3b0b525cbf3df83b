/**
 * `orch pool`: supervise local model-server processes. `start` runs the configured pools in the foreground
 * (no HTTP API; Ctrl-C stops every worker); `status` reads the workers' state from state.db; `stop`,
 * `restart` and `reset` go through the supervisor's control socket; `logs` reads the worker logs. All of
 * them work from another terminal while `orch pool start` or `orch serve` runs with the same ORCH_HOME.
 */

import type { OrchConfig } from '../src/config/schema.ts'
import { ExitCode, OrchError, UsageError } from '../src/core/errors.ts'
import { controlSocketPath } from '../src/core/home.ts'
import { logger } from '../src/core/log.ts'
import { isAlive } from '../src/core/process.ts'
import { listServices, SERVE_SERVICE } from '../src/daemon/logfile.ts'
import { daemonState } from '../src/daemon/pidfile.ts'
import { type ControlCommand, sendControl } from '../src/pool/control.ts'
import { detectGpus } from '../src/pool/gpu.ts'
import { listWorkers } from '../src/pool/records.ts'
import { type PoolStats, poolStats, type QueueFigures, type WorkerStatus, workerStatus } from '../src/pool/status.ts'
import { Supervisor } from '../src/pool/supervisor.ts'
import { controlTarget } from '../src/pool/targets.ts'
import { openStore } from '../src/store/db.ts'
import { defineOrchCommand, globalArgs, printJson, printText } from './_args.ts'
import { clientAt } from './_client.ts'
import { loadConfig } from './_config.ts'
import { showLog } from './_logs.ts'
import { formatTable } from './_table.ts'

/** The queue figures of the orch serve running on this home, if one answers. */
async function serveQueueFigures(home: string, server: OrchConfig['server']): Promise<QueueFigures | undefined> {
  const daemon = daemonState(home)
  if (!daemon.running) return undefined
  try {
    const stats = await clientAt(daemon.info.url, server).stats({ timeoutMs: 2000 })
    return stats.ok ? stats.body : undefined
  } catch {
    return undefined
  }
}

export function formatStats(stats: PoolStats): string {
  const figure = (n: number | null) => (n === null ? '-' : String(n))
  return (
    `workers ${stats.workers}, available ${stats.available}, busy ${stats.busy}, requests ${stats.requests}; ` +
    `queued ${figure(stats.queued)}, errors ${figure(stats.errors)}, queue timeouts ${figure(stats.queue_timeouts)}, ` +
    `saturated ${figure(stats.pool_saturated)}${stats.queued === null ? ' (queue figures: run orch serve --detach on this home)' : ''}`
  )
}

export function formatStatus(workers: WorkerStatus[]): string {
  if (workers.length === 0) return 'no pool workers recorded (start them with `orch pool start` or `orch serve`)'
  const head = ['POOL', 'WORKER', 'PID', 'PORT', 'GPU', 'STATE', 'UPTIME', 'RESTARTS', 'SERVED', 'LAST HEARTBEAT']
  const rows = workers.map((w) => [
    w.pool,
    w.id,
    String(w.pid ?? '-'),
    String(w.port ?? '-'),
    w.gpu ?? '-',
    w.state,
    w.uptime_s === null ? '-' : `${w.uptime_s}s`,
    String(w.restarts),
    String(w.served),
    w.last_heartbeat ?? '-',
  ])
  return formatTable([head, ...rows], { trimEnd: true })
}

const start = defineOrchCommand({
  meta: { name: 'start', description: 'Run the configured pools in the foreground (Ctrl-C stops every worker)' },
  args: { ...globalArgs, name: { type: 'positional', required: false, description: 'Only this pool (and the pools it depends on)' } },
  async run({ args }) {
    const { config, home } = loadConfig(args)
    const name = typeof args.name === 'string' ? args.name : undefined
    if (config.pools.length === 0)
      throw new UsageError('no pools configured', { hint: 'add a `pools:` section to orch.yaml (docs/operations-pools.md)' })
    if (name && !config.pools.some((p) => p.name === name)) {
      throw new UsageError(`unknown pool "${name}"`, { hint: `configured pools: ${config.pools.map((p) => p.name).join(', ')}` })
    }
    const store = openStore(home)
    const detection = await detectGpus()
    if (!detection.available) logger('pool').info(detection.reason)
    const gpus = detection.available ? detection.gpus : []
    const supervisor = new Supervisor({ config, home, store, gpus, ...(name ? { only: [name] } : {}) })
    const stopped = new Promise<string>((resolve) => {
      process.removeAllListeners('SIGINT')
      process.once('SIGINT', () => resolve('SIGINT'))
      process.once('SIGTERM', () => resolve('SIGTERM'))
    })
    const starting = supervisor.start()
    await Promise.race([starting, stopped])
    if (args.json) printJson(workerStatus(listWorkers(store), Date.now(), isAlive))
    else logger('pool').info('pools started (Ctrl-C stops every worker)')
    const signal = await stopped
    logger('pool').info(`${signal}: stopping workers`)
    await supervisor.stop()
    await starting
    store.close()
    return ExitCode.ok
  },
})

const status = defineOrchCommand({
  meta: { name: 'status', description: 'Pool workers: pid, port, GPU, state, uptime, restarts, requests served' },
  args: { ...globalArgs },
  async run({ args }) {
    const { home, config } = loadConfig(args)
    const store = openStore(home)
    let workers: WorkerStatus[]
    try {
      workers = workerStatus(listWorkers(store), Date.now(), (pid) => pid === process.pid || isAlive(pid))
    } finally {
      store.close()
    }
    const stats = poolStats(workers, await serveQueueFigures(home, config.server))
    if (args.json) printJson({ workers, stats })
    else printText(`${formatStatus(workers)}\n\n${formatStats(stats)}`)
  },
})

const NO_SUPERVISOR_HINT = 'start one with `orch pool start` or `orch serve` (with the same ORCH_HOME)'

async function control(cmd: ControlCommand, args: { name?: unknown; json?: boolean } & Parameters<typeof loadConfig>[0]) {
  const { config, home } = loadConfig(args)
  const name = typeof args.name === 'string' ? args.name : undefined
  const path = controlSocketPath(home)
  // A restart waits for every named worker to be healthy again, one after another.
  const workers = Math.max(
    1,
    config.pools.reduce((n, p) => n + p.pool_size, 0),
  )
  const timeoutMs = (config.pool_startup_timeout + 2 * config.graceful_shutdown_timeout_ms) * workers + 10_000
  const reply = await sendControl(path, { cmd, ...controlTarget(name) }, timeoutMs).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT' || error.code === 'ECONNREFUSED' || /ENOENT|ECONNREFUSED/.test(String(error.message)))
      throw new OrchError(`no pool supervisor is running for ${home}`, { code: 'E_NO_SUPERVISOR', hint: NO_SUPERVISOR_HINT })
    throw new OrchError(`pool ${cmd}: ${error.message}`, { code: 'E_CONTROL', cause: error })
  })
  if (!reply.ok) {
    const known = reply.known
    throw new UsageError(reply.error, {
      code: 'E_POOL_TARGET',
      ...(known ? { hint: `pools: ${known.pools.join(', ') || 'none'}; workers: ${known.workers.join(', ') || 'none'}` } : {}),
      ...(known ? { details: { known } } : {}),
    })
  }
  if (args.json) printJson(reply)
  else printText([reply.message, ...reply.workers.map((w) => `  ${w.pool}/${w.id}  ${w.state}  pid ${w.pid ?? '-'}`)].join('\n'))
}

const target = { type: 'positional', required: false, description: 'A pool or worker id (POOL/WORKER also works); none: all' } as const

const stop = defineOrchCommand({
  meta: { name: 'stop', description: 'Stop workers (SIGTERM, then SIGKILL after the grace period); they stay stopped until restarted' },
  args: { ...globalArgs, name: target },
  run: ({ args }) => control('stop', args),
})

const restart = defineOrchCommand({
  meta: { name: 'restart', description: 'Restart workers one at a time, draining each first (no request fails)' },
  args: { ...globalArgs, name: target },
  run: ({ args }) => control('restart', args),
})

const reset = defineOrchCommand({
  meta: { name: 'reset', description: 'Clear the crash barrier of failed workers and start them again' },
  args: { ...globalArgs, name: target },
  run: ({ args }) => control('reset', args),
})

/** The `pool/worker` log a WORKER names; with none, the only worker log there is. */
export function workerService(services: string[], name: string | undefined): string {
  const workers = services.filter((s) => s !== SERVE_SERVICE)
  if (name?.includes('/')) return name
  const matches = name === undefined ? workers : workers.filter((s) => s.endsWith(`/${name}`))
  if (matches.length === 1) return matches[0] as string
  const available = workers.length > 0 ? `worker logs: ${workers.join(', ')}` : 'no worker logs yet: `orch pool start` writes them'
  throw new UsageError(name === undefined ? 'name the worker whose log to show' : `no log for worker "${name}"`, {
    code: 'E_NO_SERVICE',
    hint: available,
    details: { available: workers },
  })
}

const logs = defineOrchCommand({
  meta: { name: 'logs', description: "A worker's log ($ORCH_HOME/logs/POOL/WORKER.log), and with --follow what is appended" },
  args: {
    ...globalArgs,
    worker: { type: 'positional', required: false, description: 'Worker id or POOL/WORKER (optional when there is one)' },
    follow: { type: 'boolean', alias: 'f', description: 'Keep printing lines as they are appended, until Ctrl-C' },
    tail: { type: 'string', valueHint: 'N', description: 'Lines to show from the end, or "all" (default 100)' },
  },
  run({ args }) {
    const { home } = loadConfig(args)
    const service = workerService(listServices(home), typeof args.worker === 'string' ? args.worker : undefined)
    return showLog(home, service, { tail: args.tail, follow: args.follow, json: args.json })
  },
})

export default defineOrchCommand({
  meta: { name: 'pool', description: 'Supervise local model-server processes (Ollama, llama.cpp, any command)' },
  subCommands: { start, status, stop, restart, reset, logs },
  examples: [
    'orch pool start',
    'orch pool start gen',
    'orch pool status --json',
    'orch pool stop gen-2',
    'orch pool restart gen',
    'orch pool reset',
    'orch pool logs gen-1 --follow --tail 20',
  ],
})
