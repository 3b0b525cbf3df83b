/**
 * `orch pool`: supervise local model-server processes. `start` runs the configured pools in the foreground
 * (no HTTP API; Ctrl-C stops every worker); `status` reads the workers' state from state.db, so it works
 * from another terminal while `orch pool start` or `orch serve` runs with the same ORCH_HOME.
 */
import { ExitCode, UsageError } from '../src/errors.ts'
import { logger } from '../src/log.ts'
import { detectGpus } from '../src/pool/gpu.ts'
import { isAlive } from '../src/pool/proc.ts'
import { listWorkers, type WorkerRow } from '../src/pool/records.ts'
import { Supervisor } from '../src/pool/supervisor.ts'
import { openStore } from '../src/store/db.ts'
import { defineOrchCommand, globalArgs, printJson, printText } from './_args.ts'
import { loadConfig } from './_config.ts'

export interface WorkerStatus {
  pool: string
  id: string
  pid: number | null
  port: number | null
  gpu: string | null
  state: string
  uptime_s: number | null
  restarts: number
  served: number
  inflight: number
  last_heartbeat: string | null
}

const LIVE = new Set(['starting', 'healthy', 'unhealthy', 'draining'])

/** Rows as the user should see them: a worker whose orch is gone is reported stopped. */
export function workerStatus(rows: WorkerRow[], now: number, ownerAlive: (pid: number) => boolean): WorkerStatus[] {
  return rows.map((row) => {
    const gone = !ownerAlive(row.owner_pid)
    const state = gone && LIVE.has(row.state) ? 'stopped' : row.state
    const live = LIVE.has(state) && row.started_at !== null
    return {
      pool: row.pool,
      id: row.worker_id,
      pid: live ? row.pid : null,
      port: row.port,
      gpu: row.gpu,
      state,
      uptime_s: live ? Math.round((now - (row.started_at as number)) / 1000) : null,
      restarts: row.restarts,
      served: row.served,
      inflight: row.inflight,
      last_heartbeat: row.last_heartbeat === null ? null : new Date(row.last_heartbeat).toISOString(),
    }
  })
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
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)))
  return [head, ...rows]
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i] as number))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
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
  run({ args }) {
    const { home } = loadConfig(args)
    const store = openStore(home)
    try {
      const workers = workerStatus(listWorkers(store), Date.now(), (pid) => pid === process.pid || isAlive(pid))
      if (args.json) printJson(workers)
      else printText(formatStatus(workers))
    } finally {
      store.close()
    }
  },
})

export default defineOrchCommand({
  meta: { name: 'pool', description: 'Supervise local model-server processes (Ollama, llama.cpp, any command)' },
  subCommands: { start, status },
  examples: ['orch pool start', 'orch pool start gen', 'orch pool status --json'],
})
