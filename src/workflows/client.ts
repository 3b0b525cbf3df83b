/**
 * The workflows HTTP API from the client side (`orch workflows`), over the shared ServeClient: bearer token,
 * errors that keep the server's message, field and hint. A taken name (409) is the caller's input: exit 2.
 */
import { ServeClient } from '../client.ts'

export interface ClientOptions {
  url: string
  token?: string
  timeoutMs?: number
}

export class WorkflowClient {
  private readonly client: ServeClient

  constructor(options: ClientOptions) {
    this.client = new ServeClient(options.url, options.token, { usageStatuses: [400, 409], timeoutMs: options.timeoutMs ?? 30_000 })
  }

  create(definition: unknown, flags: { run?: boolean; replace?: boolean } = {}) {
    const body = {
      ...(definition as Record<string, unknown>),
      ...(flags.run ? { run: true } : {}),
      ...(flags.replace ? { replace: true } : {}),
    }
    return this.request<{ id: string; name: string; created: boolean; next_run_at: number | null; run_id?: string }>(
      'POST',
      '/workflows',
      body,
    )
  }

  /** Every workflow: the pages of GET /workflows, followed to the end. */
  async list() {
    const workflows: any[] = []
    let cursor: string | null = null
    do {
      const query: string = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`
      const page: { workflows: any[]; next_cursor: string | null } = await this.request('GET', `/workflows?limit=1000${query}`)
      workflows.push(...page.workflows)
      cursor = page.next_cursor
    } while (cursor !== null)
    return { workflows }
  }

  /** A workflow with its `recent` newest runs (GET /workflows/{id} and, for the runs, its runs list). */
  async get(id: string, recent = 10) {
    const workflow = await this.request<any>('GET', `/workflows/${encodeURIComponent(id)}`)
    const { runs } = await this.runs(workflow.id, recent)
    return { ...workflow, runs }
  }

  trigger(id: string) {
    return this.request<{ run_id: string; workflow_id: string; state: string }>('POST', `/workflows/${encodeURIComponent(id)}/runs`)
  }

  runs(id: string, limit?: number, cursor?: string) {
    const query = new URLSearchParams({ ...(limit ? { limit: String(limit) } : {}), ...(cursor ? { cursor } : {}) }).toString()
    return this.request<{ runs: any[]; next_cursor: string | null }>(
      'GET',
      `/workflows/${encodeURIComponent(id)}/runs${query ? `?${query}` : ''}`,
    )
  }

  run(runId: string) {
    return this.request<any>('GET', `/runs/${encodeURIComponent(runId)}`)
  }

  cancel(runId: string) {
    return this.request<any>('DELETE', `/runs/${encodeURIComponent(runId)}`)
  }

  setEnabled(id: string, enabled: boolean) {
    return this.request<any>('POST', `/workflows/${encodeURIComponent(id)}/${enabled ? 'enable' : 'disable'}`)
  }

  delete(id: string) {
    return this.request<{ id: string; deleted: boolean; cancelled_runs: number }>('DELETE', `/workflows/${encodeURIComponent(id)}`)
  }

  /** Poll a run until it finishes or `timeoutMs` passes (then the last state seen). */
  async wait(runId: string, timeoutMs: number, everyMs = 500): Promise<any> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const run = await this.run(runId)
      if (!['queued', 'running'].includes(run.state) || Date.now() >= deadline) return run
      await Bun.sleep(Math.min(everyMs, Math.max(1, deadline - Date.now())))
    }
  }

  private request<T>(method: string, path: string, body?: unknown): Promise<T> {
    return this.client.request<T>(method, path, body, { accept: 'application/json' })
  }
}
