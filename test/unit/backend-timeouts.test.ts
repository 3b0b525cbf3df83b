/**
 * Deadlines and cancellation of backend calls. Timings are generous (a loaded 2-core CI machine): a
 * deadline must not fire early, and must fire within LATE ms after it is due.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'bun:test'
import { collectChat } from '../../src/backends/create.ts'
import { ollamaBackend } from '../../src/backends/ollama.ts'
import { openaiBackend } from '../../src/backends/openai.ts'
import { type BackendTimeouts, cleanMessage, StreamFailure, startCall, toBackendError } from '../../src/backends/timeouts.ts'
import { type Backend, BackendError, type ChatRequest } from '../../src/backends/types.ts'
import { ROOT } from '../helpers/cli.ts'
import { type FakeServer, startFakeOllama } from '../helpers/fake-ollama.ts'
import { startFakeOpenAI } from '../helpers/fake-openai.ts'

const LATE = 1500
const LONG = 30_000
const limits = (t: Partial<BackendTimeouts>): BackendTimeouts => ({
  connect_ms: LONG,
  first_token_ms: LONG,
  idle_ms: LONG,
  total_ms: LONG,
  ...t,
})
const ask: ChatRequest = { model: 'llama3.2', messages: [{ role: 'user', content: 'a b c d e f g h i j k l m n o p' }] }

/** Runs `fn`, expects a BackendError, and says how long it took. */
async function timed(fn: () => Promise<unknown>): Promise<{ error: BackendError; ms: number }> {
  const started = performance.now()
  const error = await fn().then(
    () => undefined,
    (e: unknown) => e,
  )
  const ms = performance.now() - started
  expect(error).toBeInstanceOf(BackendError)
  return { error: error as BackendError, ms }
}

function expectTimeout(result: { error: BackendError; ms: number }, which: keyof BackendTimeouts, ms: number) {
  expect(result.error).toMatchObject({ kind: 'timeout', retryable: true, details: { timeout: which, timeout_ms: ms } })
  expect(result.error.message).toContain(`${which} ${ms} ms`)
  expect(result.ms).toBeGreaterThanOrEqual(ms - 5)
  expect(result.ms).toBeLessThan(ms + LATE)
}

let fake: FakeServer
beforeAll(async () => {
  fake = await startFakeOllama()
})
afterAll(() => fake.stop())
beforeEach(() => {
  fake.set({ latencyMs: 0, tokenDelayMs: 0, hang: false })
  fake.reset()
})
const ollama = (t: Partial<BackendTimeouts>): Backend => ollamaBackend({ name: 'local', url: fake.url, timeouts: limits(t) })
const lastCallAborted = () => fake.until(() => fake.calls.at(-1)?.aborted === true && fake.stats.inFlight === 0)

describe('deadlines against fake-ollama', () => {
  test('connect_ms: no response headers for a metadata call', async () => {
    fake.set({ hang: 'before-headers' })
    expectTimeout(await timed(() => ollama({ connect_ms: 150 }).listModels()), 'connect_ms', 150)
    await lastCallAborted()
  })

  test('idle_ms: a metadata call whose body stalls after the headers (not total_ms)', async () => {
    fake.set({ hang: 'after-headers' })
    expectTimeout(await timed(() => ollama({ connect_ms: 1000, idle_ms: 150 }).listModels()), 'idle_ms', 150)
    await lastCallAborted()
    const health = await ollama({ connect_ms: 1000, idle_ms: 150 }).health()
    expect(health).toMatchObject({ ok: false, error: 'local: timed out waiting for the next chunk (idle_ms 150 ms)' })
    expect(health.latency_ms).toBeLessThan(150 + LATE)
    const openai = await startFakeOpenAI({ hang: 'after-headers' })
    try {
      const backend = openaiBackend({ name: 'vllm', url: openai.url, timeouts: limits({ connect_ms: 1000, idle_ms: 150 }) })
      expectTimeout(await timed(() => backend.listModels()), 'idle_ms', 150)
      await openai.until(() => openai.stats.inFlight === 0 && openai.calls.every((c) => c.aborted))
    } finally {
      await openai.stop()
    }
  })

  test('first_token_ms: a model call covers headers and the first chunk (Ollama sends them together)', async () => {
    fake.set({ hang: 'before-headers' })
    expectTimeout(await timed(() => collectChat(ollama({ connect_ms: 50, first_token_ms: 200 }).chat(ask))), 'first_token_ms', 200)
    await lastCallAborted()
    expectTimeout(
      await timed(() => ollama({ first_token_ms: 150 }).embed({ model: 'nomic-embed-text', input: 'x' })),
      'first_token_ms',
      150,
    )
    await lastCallAborted()
  })

  test('idle_ms: the stream stops after the first chunk', async () => {
    fake.set({ hang: 'after-first-chunk' })
    const chunks: string[] = []
    const result = await timed(async () => {
      for await (const chunk of ollama({ idle_ms: 200 }).chat(ask)) chunks.push(chunk.message.content)
    })
    expect(chunks).toEqual(['a'])
    expectTimeout(result, 'idle_ms', 200)
    await lastCallAborted()
  })

  test('total_ms: a steady but too long stream', async () => {
    fake.set({ tokenDelayMs: 40 })
    expectTimeout(await timed(() => collectChat(ollama({ idle_ms: 2000, total_ms: 300 }).chat(ask))), 'total_ms', 300)
    await lastCallAborted()
  })

  test('a timeout that does not fire leaves the answer alone', async () => {
    fake.set({ tokenDelayMs: 5 })
    const answer = await collectChat(ollama({ connect_ms: 100, first_token_ms: 1000, idle_ms: 1000, total_ms: 5000 }).chat(ask))
    expect(answer.message.content).toBe(ask.messages[0]?.content ?? '')
  })
})

describe('cancellation', () => {
  test('caller abort mid-stream: aborted (not retryable) at once, and the fake sees the disconnect', async () => {
    fake.set({ tokenDelayMs: 50 })
    const controller = new AbortController()
    let abortedAt = 0
    const result = await timed(async () => {
      for await (const _ of ollama({}).chat(ask, { signal: controller.signal })) {
        setTimeout(() => {
          abortedAt = performance.now()
          controller.abort()
        }, 10)
      }
    })
    expect(result.error).toMatchObject({ kind: 'aborted', retryable: false, code: 'E_BACKEND_ABORTED' })
    expect(performance.now() - abortedAt).toBeLessThan(100)
    await lastCallAborted()
  })

  test('caller abort while waiting for headers; an already aborted signal sends nothing', async () => {
    fake.set({ hang: 'before-headers' })
    const controller = new AbortController()
    setTimeout(() => controller.abort(), 50)
    const waiting = await timed(() => ollama({}).embed({ model: 'nomic-embed-text', input: 'x' }, { signal: controller.signal }))
    expect(waiting.error.kind).toBe('aborted')
    expect(waiting.ms).toBeLessThan(50 + LATE)
    await lastCallAborted()
    fake.reset()
    const before = await timed(() => collectChat(ollama({}).chat(ask, { signal: AbortSignal.abort() })))
    expect(before.error.kind).toBe('aborted')
    expect((await timed(() => ollama({}).listModels({ signal: AbortSignal.abort() }))).error.kind).toBe('aborted')
    await Bun.sleep(20)
    expect(fake.calls).toHaveLength(0)
  })

  test('a health check aborted by the caller throws; other failures report not ok', async () => {
    fake.set({ hang: 'before-headers' })
    expect((await timed(() => ollama({}).health({ signal: AbortSignal.timeout(30) }))).error.kind).toBe('aborted')
    expect(await ollama({ connect_ms: 50 }).health()).toMatchObject({ ok: false })
  })

  test('openai backend: idle timeout and caller abort close the request too', async () => {
    const openai = await startFakeOpenAI({ hang: 'after-first-chunk' })
    try {
      const backend = openaiBackend({ name: 'vllm', url: openai.url, timeouts: limits({ idle_ms: 150 }) })
      const request = { ...ask, model: 'qwen2.5-7b-instruct' }
      expectTimeout(await timed(() => collectChat(backend.chat(request))), 'idle_ms', 150)
      await openai.until(() => openai.stats.abortedCount === 1)
      const error = await timed(() => collectChat(backend.chat(request, { signal: AbortSignal.timeout(50) })))
      expect(error.error.kind).toBe('aborted')
      await openai.until(() => openai.stats.abortedCount === 2 && openai.stats.inFlight === 0)
    } finally {
      await openai.stop()
    }
  })
})

describe('startCall without HTTP', () => {
  const ticking = async function* (delays: number[]) {
    for (const [i, ms] of delays.entries()) {
      await Bun.sleep(ms)
      yield i
    }
  }

  test('first_token_ms, then idle_ms per chunk', async () => {
    const run = async (t: Partial<BackendTimeouts>, delays: number[]) => {
      const call = startCall({ backend: 'b', timeouts: limits(t), phase: 'model' })
      try {
        for await (const _ of call.stream(ticking(delays))) {
        }
      } catch (e) {
        throw call.error(e)
      } finally {
        call.end(false)
      }
    }
    expectTimeout(await timed(() => run({ first_token_ms: 100 }, [400])), 'first_token_ms', 100)
    expectTimeout(await timed(() => run({ first_token_ms: 1000, idle_ms: 100 }, [0, 10, 400])), 'idle_ms', 100)
  })

  test('one timer per call: a stream that ends before its shortest timeout sets it once, however many chunks', async () => {
    const real = globalThis.setTimeout
    let set = 0
    globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
      set++
      return real(...args)
    }) as typeof setTimeout
    try {
      const call = startCall({ backend: 'b', timeouts: limits({}), phase: 'model' })
      let chunks = 0
      for await (const _ of call.stream(ticking(new Array(20).fill(1)))) chunks++
      call.end(true)
      expect(chunks).toBe(20)
    } finally {
      globalThis.setTimeout = real
    }
    expect(set).toBe(1)
  })

  test('end() clears every timer: a process with pending 30 s deadlines exits at once', async () => {
    const script = `
      import { ollamaBackend } from './src/backends/ollama.ts'
      import { openaiBackend } from './src/backends/openai.ts'
      import { collectChat } from './src/backends/create.ts'
      import { startFakeOllama } from './test/helpers/fake-ollama.ts'
      import { startFakeOpenAI } from './test/helpers/fake-openai.ts'
      const t = { connect_ms: 30000, first_token_ms: 30000, idle_ms: 30000, total_ms: 30000 }
      const f = await startFakeOllama({ tokenDelayMs: 2 }), g = await startFakeOpenAI()
      for (const b of [ollamaBackend({ name: 'o', url: f.url, timeouts: t }), openaiBackend({ name: 'v', url: g.url, timeouts: t })]) {
        const model = b.type === 'ollama' ? 'llama3.2' : 'qwen2.5-7b-instruct'
        await collectChat(b.chat({ model, messages: [{ role: 'user', content: 'a b c' }] }))
        for await (const _ of b.chat({ model, messages: [{ role: 'user', content: 'a b c' }] })) break
        await b.listModels(); await b.health(); await b.embed({ model: 'missing', input: 'x' }).catch(() => {})
        await collectChat(b.chat({ model, messages: [] }, { signal: AbortSignal.abort() })).catch(() => {})
      }
      await f.stop(); await g.stop()
      console.log('done')`
    const child = Bun.spawn([process.execPath, '--no-env-file', '-e', script], { cwd: ROOT, stdout: 'pipe', stderr: 'pipe' })
    const killer = setTimeout(() => child.kill(), 15_000)
    const code = await child.exited
    clearTimeout(killer)
    expect(await new Response(child.stderr).text()).toBe('')
    expect(await new Response(child.stdout).text()).toBe('done\n')
    expect(code).toBe(0)
  }, 20_000)
})

describe('network errors in orch words', () => {
  // What Bun's fetch throws: a TypeError with a code, and a message made for Bun's users.
  const bunError = (code: string, message: string) => Object.assign(new TypeError(`${code}: ${message}`), { code })
  const REFUSED = 'Unable to connect. Is the computer able to access the url?'
  const CLOSED =
    'The socket connection was closed unexpectedly. For more information, pass `verbose: true` in the second argument to fetch()'
  const url = 'http://10.0.0.7:11434'

  test.each([
    ['ECONNREFUSED', REFUSED, 'b: cannot connect to http://10.0.0.7:11434: connection refused (nothing listens on that port)'],
    ['ConnectionRefused', REFUSED, 'b: cannot connect to http://10.0.0.7:11434: connection refused (nothing listens on that port)'],
    [
      'ECONNRESET',
      CLOSED,
      'b: connection to http://10.0.0.7:11434 lost: the backend closed the connection (reset) before the answer was complete',
    ],
    [
      'ConnectionClosed',
      CLOSED,
      'b: connection to http://10.0.0.7:11434 lost: the backend closed the connection before the answer was complete',
    ],
    ['ENOTFOUND', 'getaddrinfo ENOTFOUND gpu-box', 'b: cannot connect to http://10.0.0.7:11434: host not found (DNS lookup failed)'],
    [
      'EAI_AGAIN',
      'getaddrinfo EAI_AGAIN gpu-box',
      'b: cannot connect to http://10.0.0.7:11434: DNS lookup failed (temporary failure; is the DNS server reachable?)',
    ],
    ['ETIMEDOUT', 'connect ETIMEDOUT', 'b: cannot connect to http://10.0.0.7:11434: connection timed out'],
    ['EHOSTUNREACH', 'connect EHOSTUNREACH', 'b: cannot connect to http://10.0.0.7:11434: host unreachable'],
    ['FailedToOpenSocket', 'Was there a typo in the url or port?', 'b: cannot connect to http://10.0.0.7:11434: could not open a socket'],
    [
      'DEPTH_ZERO_SELF_SIGNED_CERT',
      'self signed certificate',
      'b: cannot connect to http://10.0.0.7:11434: TLS handshake failed (DEPTH_ZERO_SELF_SIGNED_CERT)',
    ],
    [
      'ESOMETHINGNEW',
      'Unable to connect. Is the computer able to access the url?',
      'b: cannot connect to http://10.0.0.7:11434: network error (ESOMETHINGNEW)',
    ],
  ])('%s', (code, message, said) => {
    const error = toBackendError('b', bunError(code, message), url)
    expect(error.message).toBe(said)
    expect(error).toMatchObject({ kind: 'connect', retryable: true, details: { network: code, url } })
    expect(JSON.stringify(error)).not.toMatch(/verbose|Is the computer able|typo/)
  })

  test('the code wins over the class: a lost connection is retryable whatever the library wrapped it in', () => {
    const error = toBackendError('b', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }))
    expect(error).toMatchObject({ kind: 'connect', retryable: true })
    expect(error.message).toBe('b: connection lost: the backend closed the connection (reset) before the answer was complete')
  })

  test("Bun's hint sentences are cut from any other message that carries one", () => {
    expect(cleanMessage(`ECONNRESET: ${CLOSED}`)).toBe('ECONNRESET: The socket connection was closed unexpectedly')
    expect(cleanMessage(`ECONNREFUSED: ${REFUSED}`)).toBe('ECONNREFUSED: Unable to connect')
    const wrapped = Object.assign(new Error(`upstream said: ECONNREFUSED: ${REFUSED}`), { name: 'ResponseError', status_code: 502 })
    expect(toBackendError('b', wrapped).message).toBe('b: HTTP 502: upstream said: ECONNREFUSED: Unable to connect')
    expect(toBackendError('b', new StreamFailure(`cut: ${CLOSED}`)).message).toBe(
      'b: stream failed: cut: The socket connection was closed unexpectedly',
    )
    expect(toBackendError('b', new TypeError(`fetch failed. ${CLOSED}`)).message).toBe('b: cannot connect to the backend: network error')
  })

  test('through HTTP: a closed port, and a server that resets the connection', async () => {
    const gone = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
    const closed = `http://127.0.0.1:${gone.port}`
    gone.stop(true)
    const resetting = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data: (socket) => void socket.terminate() } })
    const reset = `http://127.0.0.1:${resetting.port}`
    try {
      for (const make of [ollamaBackend, openaiBackend]) {
        const request = { ...ask, model: 'm' }
        const refused = await timed(() => collectChat(make({ name: 'x', url: closed, timeouts: limits({}) }).chat(request)))
        expect(refused.error.message).toBe(`x: cannot connect to ${closed}: connection refused (nothing listens on that port)`)
        const cut = await timed(() => make({ name: 'x', url: reset, timeouts: limits({}) }).listModels())
        expect(cut.error.message).toBe(
          `x: connection to ${reset} lost: the backend closed the connection (reset) before the answer was complete`,
        )
        expect((await make({ name: 'x', url: reset, timeouts: limits({}) }).health()).error).toBe(cut.error.message)
      }
    } finally {
      resetting.stop(true)
    }
  })
})
