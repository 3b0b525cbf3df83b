/**
 * The one client of a running `orch serve` (docs/http-api.md), for every command that talks to one: health,
 * readiness and stats (`orch status`, `orch pool status`, the port hint of `orch serve`), durable tasks
 * (`orch tasks`), workflows (`orch workflows`) and chat (`orch batch --url`). The shapes it returns are the
 * JSON the server answers; callers that know a record's full type (a task) name it.
 */
import { type Answer, HttpClient, type RequestOptions, type ServerEvent } from './http.ts'

export { type Answer, type RequestOptions, type ServerEvent, type ServerTarget, serverUrl, transportCause } from './http.ts'

export interface Health {
  status: string
  version: string
  uptime_s: number
}

export interface Ready {
  ready: boolean
  backends: Array<{ name: string; url: string; healthy: boolean | null }>
  reason?: string
}

/** GET /stats: the scheduler's figures; the rest (limits, tasks, cache) as the server sends them. */
export interface Stats extends Record<string, unknown> {
  requests: number
  queued: number
  errors: number
  queue_timeouts: number
  pool_saturated: number
}

/** The least every task record carries; `Task` (the tasks room) is the full shape. */
export interface TaskRecord {
  id: string
  state: string
}

export interface Submitted {
  id: string
  state: string
  created: boolean
}

export interface TaskWait<T> {
  finished: boolean
  task: T
  waiting_for?: string
}

export interface ChatAnswer {
  message?: { role?: string; content?: unknown }
  done?: boolean
}

/** Workflow calls: a taken name (409) is the caller's input, exit 2, like a bad definition (400). */
const WORKFLOW: RequestOptions = { usageStatuses: [400, 409], timeoutMs: 30_000, headers: { accept: 'application/json' } }
const TASK_PATH = (id: string) => `/tasks/${encodeURIComponent(id)}`
const WORKFLOW_PATH = (id: string) => `/workflows/${encodeURIComponent(id)}`
const RUN_PATH = (id: string) => `/runs/${encodeURIComponent(id)}`

export class ServeClient extends HttpClient {
  /** GET /health (public): that it is orch serve, its version and uptime. */
  health(options: RequestOptions = {}): Promise<Health> {
    return this.request('GET', '/health', undefined, options)
  }

  /** GET /ready (public): 200 when a backend answers, 503 when none does; both carry the backends. */
  ready(options: RequestOptions = {}): Promise<Answer<Ready>> {
    return this.answer('GET', '/ready', options)
  }

  /** GET /stats (token): answered whatever the status, which the caller reports (401: the token). */
  stats(options: RequestOptions = {}): Promise<Answer<Stats>> {
    return this.answer('GET', '/stats', options)
  }

  /** POST /api/chat, not streamed: one answer. */
  chat(request: Record<string, unknown>, signal: AbortSignal): Promise<ChatAnswer> {
    return this.request('POST', '/api/chat', { ...request, stream: false }, { signal })
  }

  // Autoscaling.

  /** GET /scale: every pool's size, bounds and last decisions. */
  scaleStatus<T = Record<string, unknown>>(): Promise<T> {
    return this.request('GET', '/scale')
  }

  /** POST /scale/{pool}: size a pool by hand (orchestrator_mode: manual). */
  scaleSet<T = Record<string, unknown>>(pool: string, workers: number): Promise<T> {
    return this.request('POST', `/scale/${encodeURIComponent(pool)}`, { workers })
  }

  // Durable tasks.

  submitTask(body: Record<string, unknown>): Promise<Submitted> {
    return this.request('POST', '/queue/submit', body)
  }

  task<T extends TaskRecord = TaskRecord>(id: string, options: RequestOptions = {}): Promise<T> {
    return this.request('GET', TASK_PATH(id), undefined, options)
  }

  /** One page of GET /tasks (state, tenant, limit, cursor). */
  tasks<T extends TaskRecord = TaskRecord>(query: URLSearchParams): Promise<{ tasks: T[]; next_cursor: string | null }> {
    return this.request('GET', `/tasks?${query}`)
  }

  cancelTask<T extends TaskRecord = TaskRecord>(id: string): Promise<T> {
    return this.request('DELETE', TASK_PATH(id))
  }

  /** One long-poll of GET /tasks/{id}/wait, at most `timeoutMs` (the server caps it). */
  waitTask<T extends TaskRecord = TaskRecord>(id: string, timeoutMs: number, signal?: AbortSignal): Promise<TaskWait<T>> {
    return this.request('GET', `${TASK_PATH(id)}/wait?timeout=${timeoutMs}ms`, undefined, signal ? { signal } : {})
  }

  /** GET /events of these types (comma-separated), after `lastId`, until the stream ends or `signal` aborts. */
  events(types: string, lastId: string | undefined, signal: AbortSignal): AsyncGenerator<ServerEvent> {
    return this.stream(`/events?types=${encodeURIComponent(types)}`, lastId, signal)
  }

  // Workflows.

  createWorkflow(definition: unknown, flags: { run?: boolean; replace?: boolean } = {}) {
    const body = {
      ...(definition as Record<string, unknown>),
      ...(flags.run ? { run: true } : {}),
      ...(flags.replace ? { replace: true } : {}),
    }
    return this.request<{ id: string; name: string; created: boolean; next_run_at: number | null; run_id?: string }>(
      'POST',
      '/workflows',
      body,
      WORKFLOW,
    )
  }

  /** Every workflow: the pages of GET /workflows, followed to the end. */
  async workflows(): Promise<{ workflows: any[] }> {
    const workflows: any[] = []
    let cursor: string | null = null
    do {
      const query: string = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`
      const page: { workflows: any[]; next_cursor: string | null } = await this.request(
        'GET',
        `/workflows?limit=1000${query}`,
        undefined,
        WORKFLOW,
      )
      workflows.push(...page.workflows)
      cursor = page.next_cursor
    } while (cursor !== null)
    return { workflows }
  }

  /** A workflow with its `recent` newest runs (GET /workflows/{id} and, for the runs, its runs list). */
  async workflow(id: string, recent = 10): Promise<any> {
    const workflow = await this.request<any>('GET', WORKFLOW_PATH(id), undefined, WORKFLOW)
    const { runs } = await this.workflowRuns(workflow.id, recent)
    return { ...workflow, runs }
  }

  triggerWorkflow(id: string) {
    return this.request<{ run_id: string; workflow_id: string; state: string }>('POST', `${WORKFLOW_PATH(id)}/runs`, undefined, WORKFLOW)
  }

  workflowRuns(id: string, limit?: number, cursor?: string) {
    const query = new URLSearchParams({ ...(limit ? { limit: String(limit) } : {}), ...(cursor ? { cursor } : {}) }).toString()
    return this.request<{ runs: any[]; next_cursor: string | null }>(
      'GET',
      `${WORKFLOW_PATH(id)}/runs${query ? `?${query}` : ''}`,
      undefined,
      WORKFLOW,
    )
  }

  setWorkflowEnabled(id: string, enabled: boolean): Promise<any> {
    return this.request('POST', `${WORKFLOW_PATH(id)}/${enabled ? 'enable' : 'disable'}`, undefined, WORKFLOW)
  }

  deleteWorkflow(id: string) {
    return this.request<{ id: string; deleted: boolean; cancelled_runs: number }>('DELETE', WORKFLOW_PATH(id), undefined, WORKFLOW)
  }

  run(runId: string): Promise<any> {
    return this.request('GET', RUN_PATH(runId), undefined, WORKFLOW)
  }

  cancelRun(runId: string): Promise<any> {
    return this.request('DELETE', RUN_PATH(runId), undefined, WORKFLOW)
  }

  /** Poll a run until it finishes or `timeoutMs` passes (then the last state seen). */
  async waitRun(runId: string, timeoutMs: number, everyMs = 500): Promise<any> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const run = await this.run(runId)
      if (!['queued', 'running'].includes(run.state) || Date.now() >= deadline) return run
      await Bun.sleep(Math.min(everyMs, Math.max(1, deadline - Date.now())))
    }
  }
}
