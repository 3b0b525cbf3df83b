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

/** GET /ui/api/summary `models`: per model, and per model and backend, from the /metrics series. */
export interface ModelRow {
  model: string
  backend?: string
  backends?: string[]
  calls: number
  errors: number | null
  per_s: number | null
  latency_s: Distribution
  ttft_s: Distribution
  tokens_per_s: Distribution
}

export interface ModelsSection {
  models: ModelRow[]
  by_backend: ModelRow[]
  history: { window_s: number; points: Array<{ t: number; per_model: Record<string, number> }> }
}

export type RunState = 'queued' | 'running' | 'done' | 'failed' | 'cancelled'
export type StepState = 'pending' | 'queued' | 'running' | 'done' | 'failed' | 'cancelled' | 'skipped'

export interface StepDefinition {
  id: string
  type: string
  model: string
  depends_on?: string[]
}

export interface Workflow {
  id: string
  name: string
  description?: string
  steps: number
  schedule: string | null
  timezone: string | null
  enabled: boolean
  next_run_at: number | null
  created_at: number
  updated_at: number
  definition: { steps: StepDefinition[] }
  last_run: WorkflowRun | null
}

export interface RunStep {
  id: string
  type: string
  state: StepState
  task_id: string | null
  output: string | null
  error: string | null
  submitted_at: number | null
  finished_at: number | null
}

export interface WorkflowRun {
  id: string
  workflow_id: string
  state: RunState
  trigger: string
  scheduled_for: number | null
  error: string | null
  created_at: number
  started_at: number | null
  finished_at: number | null
  steps?: RunStep[]
}

/** GET /batch: as `orch batch status --json`. */
export interface BatchLock {
  name: string
  path: string
  locked_at: string
  age_seconds: number
  pid: number | null
  stale: boolean
}

export interface BatchProcessed {
  path: string
  name: string
  processed_at: string
  exit_status: number
  summary: { overall_score?: unknown; scored_metrics?: unknown; unscored?: unknown } | null
  error: string | null
  result_path: string | null
}

export interface BatchStatus {
  inputs_root: string
  pending: string[]
  locked: string[]
  locks: BatchLock[]
  stale_lock_seconds: number
  empty: string[]
  processed: BatchProcessed[]
}

export interface SummaryWithModels extends Summary {
  models: ModelsSection
}

/** GET /pools: a worker as `orch pool status --json` shows it. */
export interface PoolWorker {
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

export interface PoolsAnswer {
  pools: Array<{
    pool: string
    profile: string
    api: string
    models: string[]
    current: number
    ready: number
    inflight: number
    workers: string[]
  }>
  workers: PoolWorker[]
  stats: { requests: number; workers: number; available: number; busy: number }
  backends: BackendRow[]
}

export interface LogSource {
  source: string
  kind: 'serve' | 'worker'
  pool: string | null
  exists: boolean
}

export interface LogAnswer {
  source: string
  exists: boolean
  lines: string[]
  truncated: boolean
}
