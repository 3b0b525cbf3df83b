/** The JSON the dashboard reads (docs/http-api.md): GET /ui/api/summary and the task API. */

export interface Distribution {
  count: number
  p50: number | null
  p99: number | null
  mean: number | null
}

export interface BackendRow {
  name: string
  url: string
  pool: string | null
  healthy: boolean | null
  breaker: 'closed' | 'half_open' | 'open'
  inflight: number
  concurrency: number
  served: number
  draining: boolean
  suspended: boolean
}

export interface PoolRow {
  pool: string
  current: number
  ready: number
  desired: number
  min: number
  max: number
}

export interface WorkerRow {
  pool: string
  id: string
  backend: string
  state: string
  pid: number | null
  port: number | null
  restarts: number
  inflight: number
  served: number
}

export interface HistoryPoint {
  t: number
  requests_per_s: number
  latency_p50_s: number | null
  latency_p99_s: number | null
}

export type TaskState = 'queued' | 'running' | 'done' | 'failed' | 'cancelled'
export const TASK_STATES: readonly TaskState[] = ['queued', 'running', 'done', 'failed', 'cancelled']

export interface Summary {
  at: number
  version: string
  instance: string
  uptime_s: number
  backends: BackendRow[]
  pools: PoolRow[]
  workers: WorkerRow[]
  queue: {
    depth: number
    scheduler_queued: number
    tasks_queued: number
    oldest_wait_ms: number | null
    oldest_task_wait_ms: number | null
  }
  inflight: { calls: number; slots: number; slots_busy: number; tasks_running: number; task_runner_limit: number | null }
  requests: { total: number; errors: number; per_s: number | null }
  latency_s: Distribution
  ttft_s: Distribution
  tokens_per_s: Distribution
  cache: { hits: number; misses: number; hit_rate: number | null }
  tasks: Record<TaskState, number>
  history: { window_s: number; points: HistoryPoint[] }
}

export interface Task {
  id: string
  type: string
  model: string | null
  payload: unknown
  priority: number
  tenant: string
  idempotency_key: string | null
  state: TaskState
  attempts: number
  max_attempts: number
  stalled_count: number
  lease_owner: string | null
  run_after: number
  result: unknown
  error: { code: string; message: string } | null
  fail_reason: string | null
  created_at: number
  updated_at: number
  started_at: number | null
  finished_at: number | null
}

export interface TaskPage {
  tasks: Task[]
  next_cursor: string | null
}
