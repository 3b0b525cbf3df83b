/**
 * Overload and late failures in both dialects, against one `orch serve` with room for one call and one
 * waiting request (concurrency 1, pool_max_queue_size 1) and a short idle timeout: queue full is a 429 with
 * Retry-After; a backend that stalls after the first chunk ends the stream with the dialect's in-band error.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { Ollama } from 'ollama'
import OpenAI from 'openai'
import { startTestServe, type TestServe } from '../helpers/serve.ts'

const T = 30_000
let s: TestServe
let ollama: Ollama
let client: OpenAI

beforeAll(async () => {
  s = await startTestServe({
    concurrency: 1,
    tweak: (c) => {
      c.pool_max_queue_size = 1
      c.backend_timeouts.idle_ms = 300
    },
  })
  ollama = new Ollama({ host: s.url })
  client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'any', maxRetries: 0 })
})
afterAll(() => s?.stop())

const post = (body: unknown) => ({ method: 'POST', body: JSON.stringify(body) })

test(
  'ollama: queue full is 429 with Retry-After (one running, one waiting, the third refused)',
  async () => {
    const fake = s.fakes[0]!
    fake.set({ hang: 'before-headers' })
    const controllers = [new AbortController(), new AbortController()]
    const body = (content: string) => post({ model: 'llama3.2', messages: [{ role: 'user', content }], stream: false })
    const held = controllers.map((c, i) => s.fetch('/api/chat', { ...body(`held ${i}`), signal: c.signal }).catch(() => undefined))
    try {
      await waitFor(() => s.server.deps.engine.scheduler.stats().queued === 1 && fake.stats.inFlight === 1)
      const res = await s.fetch('/api/chat', body('refused'))
      expect(res.status).toBe(429)
      expect(res.headers.get('retry-after')).toBe('5')
      expect(((await res.json()) as { error: string }).error).toContain('queue is full')
      const error = await ollama.generate({ model: 'llama3.2', prompt: 'refused too' }).catch((e) => e)
      expect(error.status_code).toBe(429)
    } finally {
      for (const c of controllers) c.abort()
      await Promise.all(held)
      fake.set({ hang: false })
    }
    await waitFor(() => s.server.deps.engine.scheduler.stats().inflight === 0)
  },
  T,
)

test(
  'ollama: a failure after the first chunk ends the stream with an {"error"} line, which the client throws',
  async () => {
    s.fakes[0]!.set({ hang: 'after-first-chunk' })
    try {
      const res = await s.fetch('/api/chat', post({ model: 'llama3.2', messages: [{ role: 'user', content: 'stalls after this' }] }))
      expect(res.status).toBe(200)
      const lines = (await res.text())
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l))
      expect(lines[0].message.content).toBe('stalls')
      expect(lines.at(-1)).toEqual({ error: expect.stringContaining('timed out waiting for the next chunk') })
      const stream = await ollama.generate({ model: 'llama3.2', prompt: 'stalls again', stream: true })
      const read = async () => {
        for await (const _ of stream) {
          // drain
        }
      }
      await expect(read()).rejects.toThrow('timed out waiting for the next chunk')
    } finally {
      s.fakes[0]!.set({ hang: false })
    }
  },
  T,
)

test(
  'openai: queue full is a RateLimitError (429) with Retry-After',
  async () => {
    s.fakes[0]!.set({ hang: 'before-headers' })
    const controllers = [new AbortController(), new AbortController()]
    const held = controllers.map((c, i) =>
      client.completions.create({ model: 'llama3.2', prompt: `held ${i}` }, { signal: c.signal }).catch(() => undefined),
    )
    try {
      await waitFor(() => s.server.deps.engine.scheduler.stats().queued === 1 && s.fakes[0]!.stats.inFlight === 1)
      const error = await client.chat.completions
        .create({ model: 'llama3.2', messages: [{ role: 'user', content: 'no room' }] })
        .catch((e) => e)
      expect(error).toBeInstanceOf(OpenAI.RateLimitError)
      expect(error.headers.get('retry-after')).toBe('5')
      expect(error.error).toMatchObject({ type: 'rate_limit_error', code: 'rate_limit_exceeded', orch_code: 'E_QUEUE_FULL' })
    } finally {
      for (const c of controllers) c.abort()
      await Promise.all(held)
      s.fakes[0]!.set({ hang: false })
    }
    await waitFor(() => s.server.deps.engine.scheduler.stats().inflight === 0)
  },
  T,
)

test(
  'openai: a failure after the first event is an error event, which the client throws',
  async () => {
    s.fakes[0]!.set({ hang: 'after-first-chunk' })
    try {
      const stream = await client.chat.completions.create({
        model: 'llama3.2',
        messages: [{ role: 'user', content: 'stalls here' }],
        stream: true,
      })
      const seen: string[] = []
      const read = async () => {
        for await (const chunk of stream) seen.push(chunk.choices[0]?.delta.content ?? '')
      }
      await expect(read()).rejects.toThrow('timed out waiting for the next chunk')
      expect(seen).toEqual(['stalls'])
      const res = await s.fetch('/v1/completions', {
        method: 'POST',
        body: JSON.stringify({ model: 'llama3.2', prompt: 'stalls again', stream: true }),
      })
      const events = (await res.text()).split('\n\n').filter(Boolean)
      expect(JSON.parse(events.at(-1)!.slice(6))).toMatchObject({
        error: { type: 'server_error', code: 'request_timeout', orch_code: 'E_BACKEND_TIMEOUT' },
      })
      expect(events).not.toContain('data: [DONE]')
    } finally {
      s.fakes[0]!.set({ hang: false })
    }
  },
  T,
)

async function waitFor(predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!predicate()) {
    if (performance.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`)
    await Bun.sleep(5)
  }
}
