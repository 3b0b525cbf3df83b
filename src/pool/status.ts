/**
 * `orch pool status` as data: the recorded worker rows as the user should see them, and the pool figures
 * (workers, available, busy, requests served; queue figures from a running orch serve).
 */
import type { WorkerRow } from './records.ts'
import type { Worker } from './worker.ts'

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

/** Pool stats. Queue figures live in orch serve's scheduler: null when no serve is running here. */
export interface PoolStats {
  requests: number
  queued: number | null
  errors: number | null
  queue_timeouts: number | null
  pool_saturated: number | null
  workers: number
  available: number
  busy: number
}

export type QueueFigures = Pick<PoolStats, 'queued' | 'errors' | 'queue_timeouts' | 'pool_saturated'>

/** Pure: worker figures from the recorded rows, queue figures from a running serve's /stats (if any). */
export function poolStats(workers: WorkerStatus[], queue: QueueFigures | undefined): PoolStats {
  const live = workers.filter((w) => LIVE.has(w.state))
  return {
    requests: workers.reduce((n, w) => n + w.served, 0),
    queued: queue?.queued ?? null,
    errors: queue?.errors ?? null,
    queue_timeouts: queue?.queue_timeouts ?? null,
    pool_saturated: queue?.pool_saturated ?? null,
    workers: live.length,
    available: live.filter((w) => w.state === 'healthy' && w.inflight === 0).length,
    busy: live.filter((w) => w.inflight > 0).length,
  }
}

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

/** A live worker as its row: what the supervisor saves in state.db, and `orch pool status` rows from memory. */
export function rowOfWorker(worker: Worker, runId: string, ownerPid = process.pid): WorkerRow {
  return {
    pool: worker.settings.pool.name,
    worker_id: worker.id,
    pid: worker.pid ?? null,
    pgid: worker.pid ?? null,
    port: worker.port ?? null,
    gpu: worker.settings.gpu ?? null,
    run_id: runId,
    owner_pid: ownerPid,
    state: worker.state,
    started_at: worker.startedAt ?? null,
    restarts: worker.restarts,
    served: worker.served,
    inflight: worker.inflight,
    last_heartbeat: worker.lastHeartbeat ?? null,
    updated_at: Date.now(),
  }
}

/** A `worker` event of GET /events: a worker's state changed. */
export function workerEventData(worker: Worker): Record<string, unknown> {
  return {
    pool: worker.settings.pool.name,
    id: worker.id,
    state: worker.state,
    pid: worker.pid ?? null,
    port: worker.port ?? null,
    restarts: worker.restarts,
  }
}
