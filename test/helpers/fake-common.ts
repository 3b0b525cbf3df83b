/**
 * What the fake model servers share: the injectable behaviour, the call log and in-flight counters, the
 * per-call pipeline (failures, latency, per-call cost, hangs) and streamed bodies that notice a client
 * leaving. Each fake (fake-ollama.ts, fake-openai.ts) adds only its wire format.
 */

/**
 * Where a call stops answering, until the client leaves: before the response headers, right after them
 * (no chunk), or after the first streamed chunk. `stallAfterChunks` stops after any number of chunks.
 */
export type Hang = 'before-headers' | 'after-headers' | 'after-first-chunk' | false

export interface FakeBehaviour {
  /** Milliseconds before the response headers, every call. */
  latencyMs: number
  /** Milliseconds between two streamed chunks (the first goes out with the headers, as Ollama does). */
  tokenDelayMs: number
  /** Milliseconds of work per model call whatever its input size (coalescing benchmarks). */
  callCostMs: number
  /** Never answer (before-headers), send only the headers, or stop after the first streamed chunk; until the client leaves. */
  hang: Hang
  /** Stop a stream after this many chunks (0: right after the headers), until the client leaves; unset: never. */
  stallAfterChunks?: number
  /** A trickle: a stream never finishes, one more token every `tokenDelayMs` after the first, until the client leaves. */
  endless?: boolean
  /** Models served (a name without a tag means `:latest` for Ollama). */
  models: string[]
  /** Models reported as loaded; a model call loads its model. */
  loaded: string[]
  /** Length of the deterministic embedding vectors. */
  embedDims: number
  /** Model calls worked on at once per model; the rest wait (OLLAMA_NUM_PARALLEL). */
  parallel: number
  /** The text a chat or generate call answers with; the default echoes the last user message or the prompt. */
  reply: (input: string) => string
}

export interface FakeCall {
  id: number
  method: string
  path: string
  model: string | undefined
  body: any
  startedAt: number
  endedAt: number | undefined
  status: number | undefined
  /** The client went away before the response was complete. */
  aborted: boolean
  /** When each streamed chunk was written (performance.now()), the headers-only preamble not counted. */
  chunkTimes: number[]
}

export interface FakeStats {
  total: number
  inFlight: number
  maxInFlight: number
  abortedCount: number
  inFlightByModel: Record<string, number>
  maxInFlightByModel: Record<string, number>
}

export interface FakeServer {
  url: string
  port: number
  /** Every call so far, oldest first (live). */
  readonly calls: FakeCall[]
  /** Counters of model calls (chat, generate, embed). */
  readonly stats: FakeStats
  set(behaviour: Partial<FakeBehaviour>): void
  /** The next `n` model calls answer `status` with an error body. */
  failNext(n: number, status: number, message?: string): void
  /** Forgets calls, counters and pending failures; the behaviour stays. */
  reset(): void
  /** Resolves when `predicate()` holds (checked every 5 ms); rejects after `timeoutMs` (default 5000). */
  until(predicate: () => boolean, timeoutMs?: number): Promise<void>
  stop(): Promise<void>
}

export interface Exchange {
  request: Request
  call: FakeCall
  body: any
  behaviour: FakeBehaviour
  /**
   * A streamed response: `frames` go out `tokenDelayMs` apart; the call ends when the last one is written.
   * `more(i)` is the i-th frame of an endless stream (behaviour `endless`): a token chunk of the wire format.
   */
  stream(frames: string[], contentType: string, more?: (i: number) => string): Response
  /** A JSON response; with hang `after-headers` (or stallAfterChunks 0), the headers and then nothing. */
  json(status: number, body: unknown): Response
}

export interface FakeWire {
  /** Whether a path is a model call (counted in flight, subject to failNext, cost and parallel). */
  isModelCall(path: string): boolean
  errorResponse(status: number, message: string): Response
  /**
   * Bytes the wire format's clients ignore (whitespace before a JSON line, an SSE comment). Bun.serve sends
   * the headers with the first body bytes, so a stream that stalls right after its headers writes these.
   */
  ignorable: string
  route(method: string, path: string, x: Exchange): Response | Promise<Response>
}

export const defaultReply = (input: string) => input

/** Splits text into tokens that keep their leading space, so joining them gives the text back. */
export const tokenize = (text: string): string[] => (text === '' ? [] : text.split(/(?= )/))

/** Count of whitespace-separated words: the fakes' token count. */
export const countWords = (text: string): number => text.split(/\s+/).filter(Boolean).length

/** Deterministic unit vector for `text` (FNV-1a seed, xorshift32 stream). */
export function fakeEmbedding(text: string, dims: number): number[] {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0
  let x = h || 1
  const v: number[] = []
  for (let i = 0; i < dims; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    v.push(x / 0x7fffffff - 1)
  }
  const norm = Math.hypot(...v) || 1
  return v.map((n) => n / norm)
}

export async function startFake(wire: FakeWire, defaults: FakeBehaviour, options: Partial<FakeBehaviour> = {}): Promise<FakeServer> {
  // Own copies of the lists: a model call adds its model to `loaded`.
  const own = (b: FakeBehaviour): FakeBehaviour => ({ ...b, models: [...b.models], loaded: [...b.loaded] })
  let behaviour = own({ ...defaults, ...options })
  let calls: FakeCall[] = []
  let failures: { status: number; message: string }[] = []
  const stats: FakeStats = { total: 0, inFlight: 0, maxInFlight: 0, abortedCount: 0, inFlightByModel: {}, maxInFlightByModel: {} }
  const stopping = new AbortController()
  const waiting = new Map<string, (() => void)[]>()
  const working = new Map<string, number>()
  const encoder = new TextEncoder()
  let nextId = 1

  // Sleeps, slot waits and hangs all end early when the client leaves or the server stops.
  const pause = (ms: number, leave: AbortSignal) =>
    new Promise<void>((resolve) => {
      if (leave.aborted || ms <= 0) return resolve()
      const timer = Number.isFinite(ms) ? setTimeout(finish, ms) : undefined
      function finish() {
        clearTimeout(timer)
        leave.removeEventListener('abort', finish)
        resolve()
      }
      leave.addEventListener('abort', finish, { once: true })
    })

  // A model's slots (parallel), first come first served; a caller that leaves stops waiting.
  const acquire = (model: string, leave: AbortSignal) =>
    new Promise<boolean>((resolve) => {
      const queue = waiting.get(model) ?? []
      waiting.set(model, queue)
      const onLeave = () => {
        const at = queue.indexOf(take)
        if (at >= 0) queue.splice(at, 1)
        resolve(false)
      }
      function take() {
        if ((working.get(model) ?? 0) >= behaviour.parallel) {
          queue.push(take)
          return
        }
        leave.removeEventListener('abort', onLeave)
        working.set(model, (working.get(model) ?? 0) + 1)
        resolve(true)
      }
      if (leave.aborted) return resolve(false)
      leave.addEventListener('abort', onLeave, { once: true })
      take()
    })
  const release = (model: string) => {
    working.set(model, (working.get(model) ?? 1) - 1)
    waiting.get(model)?.shift()?.()
  }

  async function handle(request: Request): Promise<Response> {
    const leave = AbortSignal.any([request.signal, stopping.signal])
    const path = new URL(request.url).pathname
    let body: any
    if (request.method === 'POST') {
      try {
        body = await request.json()
      } catch {
        return wire.errorResponse(400, 'invalid JSON body')
      }
    }
    const counted = wire.isModelCall(path)
    const model = typeof body?.model === 'string' ? body.model : undefined
    const call: FakeCall = {
      id: nextId++,
      method: request.method,
      path,
      model,
      body,
      startedAt: performance.now(),
      endedAt: undefined,
      status: undefined,
      aborted: false,
      chunkTimes: [],
    }
    calls.push(call)
    let slot = false
    const key = model ?? ''
    if (counted) {
      stats.total++
      stats.inFlight++
      stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight)
      stats.inFlightByModel[key] = (stats.inFlightByModel[key] ?? 0) + 1
      stats.maxInFlightByModel[key] = Math.max(stats.maxInFlightByModel[key] ?? 0, stats.inFlightByModel[key])
    }
    const end = (status: number | undefined, aborted: boolean) => {
      if (call.endedAt !== undefined) return
      call.endedAt = performance.now()
      call.status = status
      call.aborted = aborted
      if (aborted) stats.abortedCount++
      if (slot) release(key)
      if (counted) {
        stats.inFlight--
        stats.inFlightByModel[key] = (stats.inFlightByModel[key] ?? 1) - 1
      }
    }
    request.signal.addEventListener('abort', () => end(undefined, true), { once: true })

    const failure = counted ? failures.shift() : undefined
    await pause(behaviour.latencyMs, leave)
    if (failure) {
      end(failure.status, false)
      return wire.errorResponse(failure.status, failure.message)
    }
    if (counted) {
      slot = await acquire(key, leave)
      await pause(behaviour.callCostMs, leave)
    }
    if (behaviour.hang === 'before-headers') await pause(Infinity, leave)
    if (leave.aborted) {
      end(undefined, true)
      return new Response(null, { status: 499 })
    }

    let streaming = false
    const exchange: Exchange = {
      request,
      call,
      body,
      behaviour,
      json(status, answer) {
        if (behaviour.hang !== 'after-headers' && behaviour.stallAfterChunks !== 0) return Response.json(answer, { status })
        // Headers, one space (JSON allows it before the value), then nothing until the client leaves.
        streaming = true
        let sent = false
        const stalled = new ReadableStream<Uint8Array>({
          async pull(controller) {
            if (!sent) {
              sent = true
              return controller.enqueue(encoder.encode(' '))
            }
            await pause(Number.POSITIVE_INFINITY, leave)
            end(undefined, true)
          },
          cancel: () => end(undefined, true),
        })
        return new Response(stalled, { status, headers: { 'content-type': 'application/json' } })
      },
      stream(frames, contentType, more) {
        streaming = true
        let i = 0
        const { hang, stallAfterChunks, endless, tokenDelayMs } = behaviour
        const stallAt = hang === 'after-headers' ? 0 : hang === 'after-first-chunk' ? 1 : (stallAfterChunks ?? Number.POSITIVE_INFINITY)
        const forever = endless === true && more !== undefined
        let preamble = stallAt === 0
        const stream = new ReadableStream<Uint8Array>({
          async pull(controller) {
            if (preamble) {
              // Gets the headers out (Bun.serve holds them until the first body bytes); clients skip it.
              preamble = false
              return controller.enqueue(encoder.encode(wire.ignorable))
            }
            if (i >= stallAt) await pause(Number.POSITIVE_INFINITY, leave)
            else if (i > 0) await pause(tokenDelayMs, leave)
            if (leave.aborted) return end(undefined, true)
            const frame = forever && i > 0 ? more(i) : frames[i]
            i++
            if (frame !== undefined) {
              controller.enqueue(encoder.encode(frame))
              call.chunkTimes.push(performance.now())
            }
            if (!forever && i >= frames.length) {
              controller.close()
              end(200, false)
            }
          },
          cancel: () => end(undefined, true),
        })
        return new Response(stream, { headers: { 'content-type': contentType } })
      },
    }
    const response = await wire.route(request.method, path, exchange)
    // A stream ends the call itself, when its last frame is written or the client leaves.
    if (!streaming) end(response.status, false)
    return response
  }

  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', idleTimeout: 0, fetch: handle })
  const port = server.port ?? 0
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get calls() {
      return calls
    },
    get stats() {
      return stats
    },
    set(next) {
      behaviour = own({ ...behaviour, ...next })
    },
    failNext(n, status, message = `fake failure (HTTP ${status})`) {
      for (let i = 0; i < n; i++) failures.push({ status, message })
    },
    reset() {
      calls = []
      failures = []
      // Calls still in flight stay counted, so the counters never go negative.
      const busy = Object.fromEntries(Object.entries(stats.inFlightByModel).filter(([, n]) => n > 0))
      Object.assign(stats, {
        total: 0,
        maxInFlight: stats.inFlight,
        abortedCount: 0,
        inFlightByModel: busy,
        maxInFlightByModel: { ...busy },
      })
    },
    async until(predicate, timeoutMs = 5000) {
      const deadline = performance.now() + timeoutMs
      while (!predicate()) {
        if (performance.now() > deadline) throw new Error(`fake server: condition not met within ${timeoutMs} ms`)
        await Bun.sleep(5)
      }
    },
    async stop() {
      stopping.abort()
      await server.stop(true)
    },
  }
}
