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

  list() {
    return this.request<{ workflows: any[] }>('GET', '/workflows')
  }

  get(id: string) {
    return this.request<any>('GET', `/workflows/${encodeURIComponent(id)}`)
  }

  trigger(id: string) {
    return this.request<{ run_id: string; workflow_id: string; state: string }>('POST', `/workflows/${encodeURIComponent(id)}/runs`)
  }

  runs(id: string, limit?: number) {
    return this.request<{ runs: any[] }>('GET', `/workflows/${encodeURIComponent(id)}/runs${limit ? `?limit=${limit}` : ''}`)
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
