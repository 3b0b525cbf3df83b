/**
 * Deadlines and cancellation for one backend call. A call owns one AbortController: the caller's signal,
 * every timeout and the end of the call all abort it, so the HTTP request is closed in every case, and the
 * abort reason (a BackendError) is what the caller sees, whatever the fetch or the client made of it.
 *
 * Why the header deadline is not always `connect_ms`: Ollama (and llama.cpp's server) send the response
 * headers with the first chunk, after loading the model. For calls that may load a model (chat, generate,
 * embed) the wait for headers is part of the first-token wait; `connect_ms` bounds the calls that don't
 * (tags, ps, version, health). Their small body is read in one go after the headers, within `idle_ms`:
 * without it, a server that sent headers and then stalled held a health check until `total_ms`.
 */
import { BackendError, type HealthStatus } from './types.ts'

export interface BackendTimeouts {
  connect_ms: number
  first_token_ms: number
  idle_ms: number
  total_ms: number
}

export type TimeoutName = keyof BackendTimeouts

export interface CallGuardOptions {
  backend: string
  /** The backend's URL, named in connection errors. */
  url?: string | undefined
  timeouts: BackendTimeouts
  signal?: AbortSignal | undefined
  /** 'model': headers and the first chunk are bounded by first_token_ms; 'meta': headers by connect_ms. */
  phase: 'model' | 'meta'
}

export interface CallGuard {
  /** Aborted when the caller aborts, a deadline passes, or the call ends. */
  readonly signal: AbortSignal
  /** fetch bound to this call: the call's signal, and the header deadline of the phase. */
  readonly fetch: typeof fetch
  /** Wraps a chunk stream: first_token_ms until the first chunk, idle_ms while waiting for each next one. */
  stream<T>(source: AsyncIterable<T>): AsyncGenerator<T>
  /**
   * One wait of a stream read by hand: until the first chunk it is bounded by first_token_ms, after it by
   * idle_ms, counted from the first wait since the last chunk. Not guarded: for promises that settle when
   * the call's signal aborts, as a read of a body fetched with `fetch` does.
   */
  wait<T>(promise: Promise<T>): Promise<T>
  /** A chunk of a stream read by hand came: first_token_ms is met, and idle_ms counts from the next wait. */
  chunk(): void
  /** Settles with `promise`, or rejects at once with the abort reason when the call is aborted. */
  guard<T>(promise: Promise<T>): Promise<T>
  /** The BackendError for whatever was thrown; an abort or timeout reason wins over the symptom. */
  error(thrown: unknown): BackendError
  /** Clears every timer; `completed: false` also aborts the request (consumer stopped early, or failure). */
  end(completed: boolean): void
}

/** Thrown by a stream source when the backend reported an error or stopped early, after the headers. */
export class StreamFailure extends Error {
  override readonly name = 'StreamFailure'
}

export function timeoutError(backend: string, which: TimeoutName, ms: number): BackendError {
  const what = { connect_ms: 'response headers', first_token_ms: 'the first token', idle_ms: 'the next chunk', total_ms: 'the whole call' }
  return new BackendError(`${backend}: timed out waiting for ${what[which]} (${which} ${ms} ms)`, {
    kind: 'timeout',
    backend,
    hint: `raise backend_timeouts.${which} if the backend is just slow`,
    details: { timeout: which, timeout_ms: ms },
  })
}

export function abortedError(backend: string, reason?: unknown): BackendError {
  return new BackendError(`${backend}: request aborted by the caller`, { kind: 'aborted', backend, cause: reason })
}

/**
 * Network failures by code (Node's, and the ones Bun's fetch uses), in orch's words. The runtime's own
 * message is never shown: Bun's carries hints for its own users ("Is the computer able to access the
 * url?", "pass `verbose: true` in the second argument to fetch()") that mean nothing to orch's.
 * `lost`: the connection was made, then cut (reset, closed before the answer was complete).
 */
const NETWORK: Record<string, { what: string; lost?: true }> = {
  ECONNREFUSED: { what: 'connection refused (nothing listens on that port)' },
  ConnectionRefused: { what: 'connection refused (nothing listens on that port)' },
  ECONNRESET: { what: 'the backend closed the connection (reset) before the answer was complete', lost: true },
  ConnectionReset: { what: 'the backend closed the connection (reset) before the answer was complete', lost: true },
  ConnectionClosed: { what: 'the backend closed the connection before the answer was complete', lost: true },
  EPIPE: { what: 'the backend closed the connection while the request was being sent', lost: true },
  ENOTFOUND: { what: 'host not found (DNS lookup failed)' },
  EAI_AGAIN: { what: 'DNS lookup failed (temporary failure; is the DNS server reachable?)' },
  EAI_NONAME: { what: 'host not found (DNS lookup failed)' },
  DNSException: { what: 'DNS lookup failed' },
  ETIMEDOUT: { what: 'connection timed out' },
  ConnectionTimedOut: { what: 'connection timed out' },
  EHOSTUNREACH: { what: 'host unreachable' },
  ENETUNREACH: { what: 'network unreachable' },
  EADDRNOTAVAIL: { what: 'address not available' },
  FailedToOpenSocket: { what: 'could not open a socket' },
  UnableToConnect: { what: 'could not connect' },
}
const TLS_CODE = /CERT|TLS|SSL|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)/

/** Bun's hint sentences, cut from any message that still carries one (a library's error built from a fetch error). */
const RUNTIME_HINTS = [
  /\s*Is the computer able to access the url\??/gi,
  /\s*For more information, pass `verbose: true` in the second argument to fetch\(\)\.?/gi,
]

/** What went wrong with a connection, in orch's words: by its code when known, else its cleaned message. */
export function networkReason(thrown: unknown): string {
  const e = thrown as { code?: unknown; message?: unknown }
  const code = typeof e?.code === 'string' ? e.code : ''
  const known = NETWORK[code]?.what
  if (known) return known
  const message = cleanMessage(typeof e?.message === 'string' ? e.message : String(thrown))
  return code && !message.includes(code) ? `${message} (${code})` : message
}

export function cleanMessage(message: string): string {
  let out = message
  for (const hint of RUNTIME_HINTS) out = out.replace(hint, '')
  return out === message ? message : out.replace(/[\s:.]+$/, '')
}

/** Maps what fetch, a body read or a client library threw to a BackendError (without abort context). */
export function toBackendError(backend: string, thrown: unknown, url?: string): BackendError {
  if (thrown instanceof BackendError) return thrown
  const e = thrown as { name?: string; message?: string; code?: string; status_code?: unknown; error?: unknown }
  const message = cleanMessage(typeof e?.message === 'string' ? e.message : String(thrown))
  if (e?.name === 'ResponseError' && typeof e.status_code === 'number') {
    const status = e.status_code
    return new BackendError(`${backend}: HTTP ${status}: ${message}`, { kind: 'http', backend, status, cause: thrown })
  }
  if (thrown instanceof StreamFailure) {
    // The backend broke off after answering 200 (runner crash, connection cut): another attempt may work.
    return new BackendError(`${backend}: stream failed: ${message}`, { kind: 'protocol', backend, retryable: true, cause: thrown })
  }
  const code = typeof e?.code === 'string' ? e.code : ''
  const known = NETWORK[code]
  const tls = code !== '' && TLS_CODE.test(code)
  if (known || tls || (thrown instanceof TypeError && /fetch|connect|socket|network/i.test(message))) {
    // A connection cut after it was made (reset, closed) is the same kind: another attempt may work.
    const lost = known?.lost === true
    const what = known?.what ?? (tls ? `TLS handshake failed (${code})` : code ? `network error (${code})` : 'network error')
    const where = lost ? (url ? `connection to ${url} lost` : 'connection lost') : `cannot connect to ${url ?? 'the backend'}`
    return new BackendError(`${backend}: ${where}: ${what}`, {
      kind: 'connect',
      backend,
      cause: thrown,
      details: { ...(code ? { network: code } : {}), ...(url ? { url } : {}) },
      hint: lost
        ? 'the backend closed the connection; is it restarting, crashing or out of memory?'
        : tls
          ? "check the backend's certificate, or its url's scheme (http or https)"
          : 'is the backend running at its configured url?',
    })
  }
  return new BackendError(`${backend}: unexpected answer: ${message}`, { kind: 'protocol', backend, cause: thrown })
}

/** The deadlines of one call, each as a time on performance.now()'s clock; 0 while it does not run. */
interface Deadlines {
  total: number
  /** Model calls: from the start to the first chunk (it covers the headers, see the top of the file). */
  firstToken: number
  /** While a stream waits for its next chunk. */
  idle: number
  /** Metadata calls: while a fetch waits for its headers. */
  connect: number
  /** Metadata calls: the body, once the headers are in. */
  body: number
}

const TIMEOUT_OF: Record<keyof Deadlines, TimeoutName> = {
  total: 'total_ms',
  firstToken: 'first_token_ms',
  idle: 'idle_ms',
  connect: 'connect_ms',
  body: 'idle_ms',
}

export function startCall(o: CallGuardOptions): CallGuard {
  const { backend, timeouts } = o
  const controller = new AbortController()
  const signal = controller.signal
  // Rejecters of the guarded promises in flight; aborting rejects them at once (cheaper than listeners).
  const pending = new Set<(reason: unknown) => void>()
  const abort = (reason: BackendError) => {
    if (signal.aborted) return
    controller.abort(reason)
    for (const reject of pending) reject(reason)
  }
  const caller = o.signal
  const onCallerAbort = () => abort(abortedError(backend, caller?.reason))
  if (caller?.aborted) onCallerAbort()
  else caller?.addEventListener('abort', onCallerAbort, { once: true })

  const model = o.phase === 'model'
  const started = performance.now()
  const due: Deadlines = {
    total: started + timeouts.total_ms,
    firstToken: model ? started + timeouts.first_token_ms : 0,
    idle: 0,
    connect: 0,
    body: 0,
  }
  // One timer per call, not one per deadline or per chunk: it is set for the earliest deadline that may
  // come, and when it fires with nothing due (the first chunk came, chunks kept coming) it is set again
  // for the earliest one left. A call that ends sooner than its shortest timeout sets it once.
  let timer: ReturnType<typeof setTimeout> | undefined
  let timerAt = Number.POSITIVE_INFINITY
  const arm = (at: number) => {
    if (at >= timerAt) return
    clearTimeout(timer)
    timerAt = at
    timer = setTimeout(check, Math.max(0, at - performance.now()))
  }
  const check = () => {
    timer = undefined
    timerAt = Number.POSITIVE_INFINITY
    if (ended || signal.aborted) return
    const now = performance.now()
    let first: keyof Deadlines | undefined
    let next = Number.POSITIVE_INFINITY
    for (const key of Object.keys(due) as (keyof Deadlines)[]) {
      const at = due[key]
      if (at === 0) continue
      if (at <= now && (first === undefined || at < due[first])) first = key
      else if (at > now && at < next) next = at
    }
    if (first) abort(timeoutError(backend, TIMEOUT_OF[first], timeouts[TIMEOUT_OF[first]]))
    else if (next < Number.POSITIVE_INFINITY) arm(next)
  }
  // A model call's stream waits idle_ms at most, which may come before first_token_ms and total_ms.
  arm(Math.min(due.total, model ? Math.min(due.firstToken, started + timeouts.idle_ms) : Number.POSITIVE_INFINITY))

  let ended = false
  // The reason end() aborts with: not a failure of the call, so error() never reports it.
  let endReason: BackendError | undefined

  const end = (completed: boolean) => {
    if (ended) return
    ended = true
    clearTimeout(timer)
    caller?.removeEventListener('abort', onCallerAbort)
    if (completed || signal.aborted) return
    endReason = new BackendError(`${backend}: call ended`, { kind: 'aborted', backend })
    abort(endReason)
  }

  const guard = <T>(promise: Promise<T>): Promise<T> => {
    if (signal.aborted) {
      promise.catch(() => {})
      return Promise.reject(signal.reason)
    }
    return new Promise<T>((resolve, reject) => {
      pending.add(reject)
      promise.then(
        (value) => {
          pending.delete(reject)
          resolve(value)
        },
        (err) => {
          pending.delete(reject)
          reject(err)
        },
      )
    })
  }

  // The ollama client passes a signal of its own, which only its abort() uses: orch never calls that.
  const boundFetch = (async (input: string | URL | Request, init?: RequestInit) => {
    if (!model) {
      due.connect = performance.now() + timeouts.connect_ms
      arm(due.connect)
    }
    try {
      // fetch settles as soon as the signal aborts, with its reason: no guard needed.
      const response = await fetch(input, { ...init, signal })
      if (!model && !ended) {
        due.body = performance.now() + timeouts.idle_ms
        arm(due.body)
      }
      return response
    } finally {
      due.connect = 0
    }
  }) as typeof fetch

  let first = true
  const wait = <T>(promise: Promise<T>): Promise<T> => {
    if (!first && due.idle === 0) {
      due.idle = performance.now() + timeouts.idle_ms
      arm(due.idle)
    }
    return promise
  }
  const chunk = () => {
    first = false
    due.firstToken = 0
    due.idle = 0
  }

  async function* stream<T>(source: AsyncIterable<T>): AsyncGenerator<T> {
    const it = source[Symbol.asyncIterator]()
    let finished = false
    try {
      while (true) {
        const next = await wait(guard(it.next()))
        if (next.done) {
          finished = true
          return
        }
        chunk()
        yield next.value
      }
    } finally {
      // Not awaited: a source stuck in a read settles once the request is aborted by end().
      if (!finished) it.return?.()?.catch(() => {})
    }
  }

  const error = (thrown: unknown): BackendError =>
    signal.aborted && signal.reason instanceof BackendError && signal.reason !== endReason
      ? signal.reason
      : toBackendError(backend, thrown, o.url)

  return { signal, fetch: boundFetch, stream, wait, chunk, guard, error, end }
}

/** A health check: latency of `check`; a failure is reported as unhealthy, a caller's abort is thrown. */
/** One non-streamed call: errors mapped, timers cleared, the request closed if it did not complete. */
export async function callOnce<T>(options: CallGuardOptions, run: (call: CallGuard) => Promise<T>): Promise<T> {
  const call = startCall(options)
  let completed = false
  try {
    const value = await call.guard(run(call))
    completed = true
    return value
  } catch (thrown) {
    throw call.error(thrown)
  } finally {
    call.end(completed)
  }
}

export async function probe(check: () => Promise<unknown>): Promise<HealthStatus> {
  const started = performance.now()
  const latency = () => Math.round((performance.now() - started) * 1000) / 1000
  try {
    const answer = (await check()) as { version?: unknown } | undefined
    const version = typeof answer?.version === 'string' ? answer.version : undefined
    return { ok: true, latency_ms: latency(), ...(version ? { version } : {}) }
  } catch (thrown) {
    const error = thrown as { kind?: string; message?: string }
    if (error.kind === 'aborted') throw thrown
    return { ok: false, latency_ms: latency(), error: error.message ?? String(thrown) }
  }
}
