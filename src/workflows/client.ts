/**
 * The workflows HTTP API from the client side (`orch workflows`): requests with the bearer token, errors
 * turned into OrchErrors that keep the server's message, field and hint.
 */
import { ExitCode, OrchError } from '../errors.ts'

export interface ClientOptions {
  url: string
  token?: string
  timeoutMs?: number
}

export interface ServerTarget {
  host: string
  port: number
  token?: string
}

/** The URL a client uses for a server configured to listen on host:port (a wildcard bind is reached on loopback). */
export function serverUrl(server: ServerTarget): string {
  const host = server.host === '0.0.0.0' || server.host === '::' || server.host === '' ? '127.0.0.1' : server.host
  return `http://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${server.port}`
}

export class WorkflowClient {
  private readonly base: string

  constructor(private readonly options: ClientOptions) {
    this.base = options.url.replace(/\/+$/, '')
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

  private async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' }
    if (body !== undefined) headers['content-type'] = 'application/json'
    if (this.options.token) headers.authorization = `Bearer ${this.options.token}`
    let response: Response
    try {
      response = await fetch(`${this.base}${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 30_000),
      })
    } catch (cause) {
      throw new OrchError(`no answer from orch serve at ${this.base}: ${(cause as Error).message}`, {
        code: 'E_UNREACHABLE',
        hint: 'start it (orch serve, or orch serve --detach), or point --url at it',
        cause,
      })
    }
    const text = await response.text()
    let data: any
    try {
      data = text === '' ? undefined : JSON.parse(text)
    } catch {
      data = undefined
    }
    if (response.ok) return data as T
    const error = data?.error ?? {}
    const message =
      typeof error.message === 'string' ? error.message : `${method} ${path} answered ${response.status}: ${text.slice(0, 200)}`
    throw new OrchError(message, {
      code: typeof error.code === 'string' ? error.code : `E_HTTP_${response.status}`,
      exitCode: response.status === 400 || response.status === 409 ? ExitCode.usage : ExitCode.failure,
      ...(typeof error.hint === 'string'
        ? { hint: error.hint }
        : response.status === 401
          ? { hint: 'set server.token (or ORCH_SERVER_TOKEN) as the server has it' }
          : {}),
      details: { status: response.status, ...(typeof error.field === 'string' ? { field: error.field } : {}) },
    })
  }
}
