/**
 * Talking to a running `orch serve` from the CLI: the URL (`--url`, else the configured server.host and
 * server.port), the bearer token (server.token / ORCH_SERVER_TOKEN), JSON requests whose errors keep the
 * server's message, and a Server-Sent Events reader. A server that is not there is one clear error.
 */
import { ExitCode, OrchError } from '../src/errors.ts'
import type { GlobalArgValues } from './_args.ts'
import { loadConfig } from './_config.ts'

export interface ServerEvent {
  id: string | undefined
  event: string
  data: string
}

export const urlArg = {
  url: {
    type: 'string',
    valueHint: 'URL',
    description: 'orch serve to talk to (default http://<server.host>:<server.port> from the config)',
  },
} as const

export class ServeClient {
  readonly url: string

  constructor(
    url: string,
    private readonly token: string | undefined,
  ) {
    this.url = url.replace(/\/+$/, '')
  }

  /** JSON in, JSON out; an error status becomes an OrchError carrying the server's message and code. */
  async request<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    const init: RequestInit = {
      method,
      headers: this.headers(body === undefined ? headers : { 'content-type': 'application/json', ...headers }),
    }
    if (body !== undefined) init.body = JSON.stringify(body)
    const response = await this.fetch(path, init)
    const text = await response.text()
    let data: any
    try {
      data = text === '' ? undefined : JSON.parse(text)
    } catch {
      data = undefined
    }
    if (!response.ok) throw this.httpError(response.status, data, text)
    return data as T
  }

  /** Follow `/events` (after `lastId`, if given), yielding each event until the stream ends or `signal` aborts. */
  async *events(query: string, lastId: string | undefined, signal: AbortSignal): AsyncGenerator<ServerEvent> {
    const headers: Record<string, string> = { accept: 'text/event-stream' }
    if (lastId !== undefined) headers['last-event-id'] = lastId
    const response = await this.fetch(`/events${query}`, { headers: this.headers(headers), signal })
    if (!response.ok || !response.body) throw this.httpError(response.status, await response.json().catch(() => undefined), '')
    const decoder = new TextDecoder()
    let buffer = ''
    try {
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk, { stream: true }).replace(/\r\n?/g, '\n')
        let end = buffer.indexOf('\n\n')
        while (end >= 0) {
          const event = parseFrame(buffer.slice(0, end))
          buffer = buffer.slice(end + 2)
          if (event) yield event
          end = buffer.indexOf('\n\n')
        }
      }
    } catch (error) {
      if (signal.aborted) return
      throw error
    }
  }

  private headers(extra: Record<string, string>): Record<string, string> {
    return this.token ? { authorization: `Bearer ${this.token}`, ...extra } : extra
  }

  private async fetch(path: string, init: RequestInit): Promise<Response> {
    try {
      return await fetch(`${this.url}${path}`, init)
    } catch (cause) {
      if ((init.signal as AbortSignal | undefined)?.aborted) throw cause
      const code = (cause as { code?: unknown }).code
      throw new OrchError(`cannot reach orch serve at ${this.url} (${typeof code === 'string' ? code : (cause as Error).message})`, {
        code: 'E_UNREACHABLE',
        hint: 'start it with `orch serve` (or `orch serve --detach`), or point --url at a running one',
        cause,
      })
    }
  }

  private httpError(status: number, data: any, text: string): OrchError {
    const error = data?.error
    const message = typeof error?.message === 'string' ? error.message : text.trim().slice(0, 200) || `HTTP ${status}`
    const hint =
      status === 401
        ? 'set server.token in the config, or ORCH_SERVER_TOKEN, to the token orch serve was started with'
        : typeof error?.hint === 'string'
          ? error.hint
          : undefined
    return new OrchError(`orch serve answered ${status}: ${message}`, {
      code: typeof error?.code === 'string' ? error.code : `E_HTTP_${status}`,
      exitCode: status === 400 ? ExitCode.usage : ExitCode.failure,
      ...(hint ? { hint } : {}),
      details: { status, ...(error?.field !== undefined ? { field: error.field } : {}), ...(error?.state ? { state: error.state } : {}) },
    })
  }
}

/** `--url`, else the configured listen address (a wildcard bind is reached on loopback); the token from the config. */
export function serveClient(args: GlobalArgValues & { url?: string }): ServeClient {
  const { server } = loadConfig(args).config
  if (args.url !== undefined) {
    if (!/^https?:\/\/./.test(args.url)) {
      throw new OrchError(`--url must be an http(s) URL, got "${args.url}"`, { code: 'E_USAGE', exitCode: ExitCode.usage })
    }
    return new ServeClient(args.url, server.token)
  }
  const host = server.host === '0.0.0.0' || server.host === '' ? '127.0.0.1' : server.host === '::' ? '::1' : server.host
  return new ServeClient(`http://${host.includes(':') ? `[${host}]` : host}:${server.port}`, server.token)
}

function parseFrame(frame: string): ServerEvent | undefined {
  let id: string | undefined
  let event = 'message'
  const data: string[] = []
  for (const line of frame.split('\n')) {
    if (line === '' || line.startsWith(':')) continue
    const colon = line.indexOf(':')
    const field = colon < 0 ? line : line.slice(0, colon)
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
    if (field === 'id') id = value
    else if (field === 'event') event = value
    else if (field === 'data') data.push(value)
  }
  return data.length > 0 ? { id, event, data: data.join('\n') } : undefined
}
