/**
 * Worker rows in state.db (migration 4): written by the supervisor on every state change, read by
 * `orch pool status`, and used at start to reap what a dead run left behind. A row's process is only ever
 * signalled when its owner (the orch that started it) is gone, its pid is alive, and its command line
 * carries the row's run marker: a pid reused by an unrelated process is never touched.
 */

import { isAlive, readCmdline } from '../core/process.ts'
import type { Store } from '../store/db.ts'
import { terminateGroup } from './proc.ts'

export interface WorkerRow {
  pool: string
  worker_id: string
  pid: number | null
  pgid: number | null
  port: number | null
  gpu: string | null
  run_id: string
  owner_pid: number
  state: string
  started_at: number | null
  restarts: number
  served: number
  inflight: number
  last_heartbeat: number | null
  updated_at: number
}

export function saveWorker(store: Store, row: WorkerRow): void {
  store.run(
    `INSERT INTO workers (pool, worker_id, pid, pgid, port, gpu, run_id, owner_pid, state, started_at, restarts, served, inflight, last_heartbeat, updated_at)
     VALUES ($pool, $worker_id, $pid, $pgid, $port, $gpu, $run_id, $owner_pid, $state, $started_at, $restarts, $served, $inflight, $last_heartbeat, $updated_at)
     ON CONFLICT (pool, worker_id) DO UPDATE SET pid = excluded.pid, pgid = excluded.pgid, port = excluded.port, gpu = excluded.gpu,
       run_id = excluded.run_id, owner_pid = excluded.owner_pid, state = excluded.state, started_at = excluded.started_at,
       restarts = excluded.restarts, served = excluded.served, inflight = excluded.inflight,
       last_heartbeat = excluded.last_heartbeat, updated_at = excluded.updated_at`,
    { ...row },
  )
}

export function listWorkers(store: Store): WorkerRow[] {
  return store.all<WorkerRow>('SELECT * FROM workers ORDER BY pool, worker_id')
}

/** Does this live process carry the run marker the watchdog was started with? */
export function carriesRunMarker(cmdline: string[] | undefined, row: WorkerRow): boolean {
  if (!cmdline) return false
  const run = cmdline.indexOf('--run')
  const worker = cmdline.indexOf('--worker')
  return run >= 0 && cmdline[run + 1] === row.run_id && worker >= 0 && cmdline[worker + 1] === `${row.pool}/${row.worker_id}`
}

/** Kill the process groups of dead runs' workers; returns the pids reaped. Rows of dead owners are dropped. */
export async function reapStale(store: Store, graceMs: number, self = process.pid): Promise<number[]> {
  const reaped: number[] = []
  for (const row of listWorkers(store)) {
    if (row.owner_pid === self || isAlive(row.owner_pid)) continue
    if (row.pgid !== null && isAlive(row.pgid) && carriesRunMarker(readCmdline(row.pgid), row)) {
      await terminateGroup(row.pgid, graceMs)
      reaped.push(row.pgid)
    }
    store.run('DELETE FROM workers WHERE pool = ? AND worker_id = ? AND run_id = ?', [row.pool, row.worker_id, row.run_id])
  }
  return reaped
}
