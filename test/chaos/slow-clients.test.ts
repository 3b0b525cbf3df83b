/**
 * Slow clients and idle connections against a real orch serve: silent sockets, headers and bodies that
 * trickle or stop short, idle keep-alive connections. Each is closed within its bound, descriptors go back
 * to their baseline, and the routes that may legitimately be quiet (long-polls, streams) are not cut.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { openDescriptors, rawRequest } from '../helpers/raw-http.ts'
import { startTestServe, type TestServe } from '../helpers/serve.ts'

const IDLE_S = 1
const BODY_MS = 800
/** Bun closes a connection whose request headers are not complete after about 10 s, whatever the idle timeout. */
const HEADER_LIMIT_MS = 14_000
let s: TestServe
let port: number

beforeAll(async () => {
  s = await startTestServe({
    fakes: [{ tokenDelayMs: 1600 }],
    tweak: (c) => {
      c.server.idle_timeout_s = IDLE_S
      c.server.body_timeout_ms = BODY_MS
      c.server.max_open_requests = 40
    },
  })
  port = Number(new URL(s.url).port)
})
afterAll(() => s.stop())

const head = (method: string, path: string, length?: number) =>
  `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${length === undefined ? '' : `Content-Length: ${length}\r\n`}\r\n`

async function settleDescriptors(baseline: number, slack: number): Promise<number> {
  const deadline = Date.now() + 5000
  let now = await openDescriptors()
  while (now > baseline + slack && Date.now() < deadline) {
    await Bun.sleep(100)
    now = await openDescriptors()
  }
  return now
}

describe('slow clients', () => {
  test('a body that stops short and a body that trickles: 408 at server.body_timeout_ms, connection closed', async () => {
    const short = rawRequest(port, `${head('POST', '/queue/submit', 1000)}{"type":"gen`, { timeoutMs: 5000, untilClose: true })
    const trickle = rawRequest(port, head('POST', '/queue/submit', 1000), {
      more: Array.from({ length: 40 }, () => ' '),
      gapMs: 100,
      timeoutMs: 5000,
      untilClose: true,
    })
    // A model route is exempt from the idle timeout, not from the body timeout.
    const model = rawRequest(port, `${head('POST', '/api/chat', 1000)}{"model":`, { timeoutMs: 5000, untilClose: true })
    for (const r of await Promise.all([short, trickle, model])) {
      expect(r.status).toBe(408)
      expect(r.closed).toBe(true)
      expect(r.ms).toBeGreaterThanOrEqual(BODY_MS * 0.9)
      expect(r.ms).toBeLessThan(BODY_MS + 1500)
      expect(r.body).toContain('server.body_timeout_ms')
    }
  })

  test('a client that leaves mid-body is recorded as 499 (client closed), not as a server error', async () => {
    const count = async (status: string) => {
      const text = await (await s.fetch('/metrics')).text()
      return text
        .split('\n')
        .filter((l) => l.startsWith('orch_http_request_duration_seconds_count') && l.includes(`status="${status}"`))
        .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0)
    }
    const before = { left: await count('499'), failed: await count('500') }
    const leave = (data: string) => rawRequest(port, data, { timeoutMs: 150 })
    await Promise.all([
      leave(`${head('POST', '/queue/submit', 1000)}{"type"`),
      leave('POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"mod\r\n'),
    ])
    const deadline = Date.now() + 3000
    while ((await count('499')) < before.left + 2 && Date.now() < deadline) await Bun.sleep(50)
    expect(await count('499')).toBe(before.left + 2)
    expect(await count('500')).toBe(before.failed)
  })

  test('idle keep-alive connections are closed after server.idle_timeout_s; descriptors back to baseline', async () => {
    const baseline = await openDescriptors()
    const results = await Promise.all(
      Array.from({ length: 200 }, () =>
        rawRequest(port, head('GET', '/health'), { timeoutMs: IDLE_S * 1000 * 3 + 2000, untilClose: true }),
      ),
    )
    for (const r of results) {
      expect(r.status).toBe(200)
      expect(r.hung).toBe(false)
      expect(r.closed).toBe(true)
      expect(r.ms).toBeLessThan(IDLE_S * 1000 * 3 + 1500)
    }
    expect(await settleDescriptors(baseline, 5)).toBeLessThanOrEqual(baseline + 5)
  })

  test('silent sockets and headers that trickle are closed by the header limit, not held', async () => {
    const baseline = await openDescriptors()
    const silent = Array.from({ length: 30 }, () => rawRequest(port, '', { timeoutMs: HEADER_LIMIT_MS, untilClose: true }))
    const trickling = Array.from({ length: 10 }, () =>
      rawRequest(port, 'GET /health HTTP/1.1\r\n', {
        more: Array.from({ length: 200 }, () => 'X'),
        gapMs: 300,
        timeoutMs: HEADER_LIMIT_MS,
        untilClose: true,
      }),
    )
    for (const r of await Promise.all([...silent, ...trickling])) {
      expect(r.hung).toBe(false)
      expect(r.closed).toBe(true)
      expect(r.status).toBeUndefined()
    }
    expect(await settleDescriptors(baseline, 5)).toBeLessThanOrEqual(baseline + 5)
  }, 30_000)
})

describe('quiet routes are not cut, and open requests are bounded', () => {
  test('a long-poll and a stream quieter than the idle timeout run to their end', async () => {
    const submitted = await s.fetch('/queue/submit', {
      method: 'POST',
      body: JSON.stringify({ type: 'generate', payload: { model: 'llama3.2', prompt: 'two words' } }),
    })
    const { id } = (await submitted.json()) as { id: string }
    const waited = await s.fetch(`/tasks/${id}/wait?timeout=20s`)
    expect(waited.status).toBe(200)
    expect(((await waited.json()) as { finished: boolean }).finished).toBe(true)
    // Each token comes 1.6 s after the last, longer than the 1 s idle timeout.
    const stream = await s.fetch('/api/generate', {
      method: 'POST',
      body: JSON.stringify({ model: 'llama3.2', prompt: 'three small words' }),
    })
    const lines = (await stream.text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(lines.at(-1).done).toBe(true)
    expect(lines.map((l) => l.response).join('')).toContain('words')
  }, 30_000)

  test('after a long-poll or a stream, its keep-alive connection is held to the idle timeout again', async () => {
    const submitted = await s.fetch('/queue/submit', {
      method: 'POST',
      body: JSON.stringify({ type: 'generate', payload: { model: 'llama3.2', prompt: 'held' } }),
    })
    const { id } = (await submitted.json()) as { id: string }
    const body = JSON.stringify({ model: 'llama3.2', prompt: 'one two' })
    const refused = `${head('POST', '/api/chat', 2)}{}`
    const [poll, stream, invalid] = await Promise.all([
      rawRequest(port, head('GET', `/tasks/${id}/wait?timeout=1500ms`), { timeoutMs: 15_000, untilClose: true }),
      rawRequest(port, `${head('POST', '/api/generate', body.length)}${body}`, { timeoutMs: 15_000, untilClose: true }),
      // A long route that refuses its request gives the exemption back too.
      rawRequest(port, refused, { timeoutMs: 15_000, untilClose: true }),
    ])
    expect(invalid.status).toBe(400)
    expect(invalid.closed).toBe(true)
    expect(invalid.ms).toBeLessThan(IDLE_S * 1000 * 3 + 1500)
    for (const r of [poll, stream]) {
      expect(r.status).toBe(200)
      expect(r.hung).toBe(false)
      expect(r.closed).toBe(true)
    }
    // Answered after 1.5 s (the poll) and ~3.2 s (two tokens 1.6 s apart), closed about an idle timeout later.
    expect(poll.ms).toBeLessThan(1500 + IDLE_S * 1000 * 3 + 1500)
    expect(stream.body).toContain('"done":true')
    expect(stream.ms).toBeLessThan(3200 + IDLE_S * 1000 * 3 + 1500)
  }, 30_000)

  test('past server.max_open_requests a request is answered 503 at once and closed', async () => {
    const { controller, held } = await holdEventStreams(s, 45)
    const started = performance.now()
    const refused = await rawRequest(port, head('GET', '/health'), { timeoutMs: 3000 })
    expect(refused.status).toBe(503)
    expect(performance.now() - started).toBeLessThan(500)
    expect(refused.headers['retry-after']).toBe('1')
    expect(JSON.parse(refused.body).error.code).toBe('E_BUSY')
    controller.abort()
    await Promise.all(held)
    expect((await s.fetch('/health')).status).toBe(200)
  })

  test('server.max_open_requests 0 sets no bound: past 40 open streams a request is still answered', async () => {
    const unbounded = await startTestServe({ tweak: (c) => (c.server.max_open_requests = 0) })
    try {
      const { controller, held } = await holdEventStreams(unbounded, 45)
      expect((await unbounded.fetch('/health')).status).toBe(200)
      controller.abort()
      await Promise.all(held)
    } finally {
      await unbounded.stop()
    }
  })
})

/** `n` event streams held open (they stay until their client leaves), until `controller` aborts them. */
async function holdEventStreams(server: TestServe, n: number) {
  const controller = new AbortController()
  const held = Array.from({ length: n }, () =>
    server.fetch('/events', { signal: controller.signal }).then(
      (r) =>
        r.body
          ?.getReader()
          .read()
          .then(() => r.status),
      () => 0,
    ),
  )
  await Bun.sleep(300)
  return { controller, held }
}
