/**
 * The wire side of talking to a running `orch serve`: the bearer token, JSON requests whose errors keep the
 * server's message, code, field and hint, and a Server-Sent Events reader. A server that is not there is
 * one clear error (E_UNREACHABLE, with what fetch threw as its cause).
 */
import { ExitCode, OrchError } from '../core/errors.ts'

export interface ServerTarget {
  host: string
  port: number
}

/** The URL that reaches a server configured to listen on host:port (a wildcard bind is reached on loopback). */
export function serverUrl(server: ServerTarget): string {
  const host = server.host === '0.0.0.0' || server.host === '' ? '127.0.0.1' : server.host === '::' ? '::1' : server.host
  return `http://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${server.port}`
}

export interface ServerEvent {
  id: string | undefined
  event: string
  data: string
}

export interface RequestOptions {
  /** Statuses that mean the caller's input was wrong (exit 2); default 400. */
  usageStatuses?: number[]
  /** For this request; none by default (long polls and streams choose their own). */
  timeoutMs?: number
  /** Ends the request early; its abort error is thrown as it is. */
  signal?: AbortSignal
  headers?: Record<string, string>
}

/** An answer whatever its status: for the endpoints whose every status means something (/ready's 503). */
export interface Answer<T> {
  status: number
  ok: boolean
  /** The JSON body; undefined when there is none or it is not JSON. */
  body: T | undefined
}

/** What fetch threw, out of the E_UNREACHABLE error that wraps it (anything else as it is). */
export function transportCause(error: unknown): unknown {
  return error instanceof OrchError && error.code === 'E_UNREACHABLE' ? error.cause : error
}

export class HttpClient {
  readonly url: string

  constructor(
    url: string,
    private readonly token: string | undefined,
  ) {
    this.url = url.replace(/\/+$/, '')
  }

  /** JSON in, JSON out; an error status becomes an OrchError carrying the server's message and code. */
  async request<T>(method: string, path: string, body?: unknown, options: RequestOptions = {}): Promise<T> {
    const { response, data, text } = await this.send(method, path, body, options)
    if (!response.ok) throw this.httpError(response.status, data, text, options.usageStatuses)
    return data as T
  }

  /** Like `request`, but an error status is answered, not thrown. */
  async answer<T>(method: string, path: string, options: RequestOptions = {}): Promise<Answer<T>> {
    const { response, data } = await this.send(method, path, undefined, options)
    return { status: response.status, ok: response.ok, body: data as T | undefined }
  }

  /** Follow `/events?…` (after `lastId`, if given), yielding each event until the stream ends or `signal` aborts. */
  async *stream(path: string, lastId: string | undefined, signal: AbortSignal): AsyncGenerator<ServerEvent> {
    const headers: Record<string, string> = { accept: 'text/event-stream' }
    if (lastId !== undefined) headers['last-event-id'] = lastId
    const response = await this.fetch(path, { headers: this.headers(headers), signal })
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

  private async send(method: string, path: string, body: unknown, options: RequestOptions) {
    const extra = options.headers ?? {}
    const init: RequestInit = {
      method,
      headers: this.headers(body === undefined ? extra : { 'content-type': 'application/json', ...extra }),
    }
    if (body !== undefined) init.body = JSON.stringify(body)
    const signals = [
      ...(options.signal ? [options.signal] : []),
      ...(options.timeoutMs !== undefined ? [AbortSignal.timeout(options.timeoutMs)] : []),
    ]
    if (signals.length > 0) init.signal = signals.length === 1 ? signals[0] : AbortSignal.any(signals)
    const response = await this.fetch(path, init)
    const text = await response.text()
    let data: unknown
    try {
      data = text === '' ? undefined : JSON.parse(text)
    } catch {
      data = undefined
    }
    return { response, data, text }
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

  private httpError(status: number, data: any, text: string, usageStatuses = [400]): OrchError {
    const error = data?.error
    const message = typeof error?.message === 'string' ? error.message : text.trim().slice(0, 200) || `HTTP ${status}`
    const hint =
      status === 401
        ? 'set server.token in the config, or ORCH_SERVER_TOKEN, to the token orch serve was started with'
        : typeof error?.hint === 'string'
          ? error.hint
          : undefined
    return new OrchError(`${message} (HTTP ${status})`, {
      code: typeof error?.code === 'string' ? error.code : `E_HTTP_${status}`,
      exitCode: usageStatuses.includes(status) ? ExitCode.usage : ExitCode.failure,
      ...(hint ? { hint } : {}),
      status,
      details: { ...(error?.field !== undefined ? { field: error.field } : {}), ...(error?.state ? { state: error.state } : {}) },
    })
  }
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
