/**
 * The official `ollama` npm client pointed at a running `orch serve` (host = its URL) in front of fake
 * Ollama servers: chat, generate, embeddings, streaming, model lists, errors with their statuses, and a
 * client that leaves mid-stream cancelling the upstream call.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { Ollama } from 'ollama'
import { FAKE_OLLAMA_VERSION, fakeEmbedding } from '../helpers/fake-ollama.ts'
import { startTestServe, type TestServe } from '../helpers/serve.ts'

const T = 30_000
let t: TestServe
let ollama: Ollama

beforeAll(async () => {
  t = await startTestServe({ fakes: [{ models: ['llama3.2', 'nomic-embed-text'] }, { models: ['llama3.2', 'qwen3:8b'] }] })
  ollama = new Ollama({ host: t.url })
})
afterAll(() => t?.stop())

const inflight = () => t.server.deps.engine.scheduler.stats().inflight
const modelCalls = (s: TestServe, path: string) => s.fakes.flatMap((f) => f.calls.filter((c) => c.path === path))
const post = (body: unknown, headers: Record<string, string> = {}) => ({ method: 'POST', body: JSON.stringify(body), headers })

describe('ollama client: chat and generate', () => {
  test(
    'chat without streaming: the fake echo, done with counts',
    async () => {
      const answer = await ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'why is the sky blue' }] })
      expect(answer.message).toMatchObject({ role: 'assistant', content: 'why is the sky blue' })
      expect(answer).toMatchObject({ done: true, done_reason: 'stop', eval_count: 5, model: 'llama3.2' })
    },
    T,
  )

  test(
    'chat streaming: one chunk per token, joined they are the echo, the last done',
    async () => {
      const stream = await ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'one two three four' }], stream: true })
      const parts: string[] = []
      let last: { done: boolean } | undefined
      for await (const chunk of stream) {
        parts.push(chunk.message.content)
        last = chunk
      }
      expect(parts.join('')).toBe('one two three four')
      expect(parts.filter(Boolean).length).toBe(4)
      expect(last?.done).toBe(true)
    },
    T,
  )

  test(
    'NDJSON on the wire: streaming is the default without `stream`, one JSON object a line, the last done',
    async () => {
      const res = await t.fetch('/api/chat', post({ model: 'llama3.2', messages: [{ role: 'user', content: 'raw ndjson' }] }))
      expect(res.status).toBe(200)
      expect(res.headers.get('content-type')).toBe('application/x-ndjson')
      const lines = (await res.text())
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l))
      expect(lines.length).toBe(3)
      expect(lines.at(-1)).toMatchObject({ done: true, done_reason: 'stop' })
      expect(lines.map((l) => l.message.content).join('')).toBe('raw ndjson')
    },
    T,
  )

  test(
    'generate, with and without streaming; options reach the backend',
    async () => {
      const answer = await ollama.generate({ model: 'llama3.2', prompt: 'alpha beta gamma', system: 'be brief' })
      expect(answer).toMatchObject({ response: 'alpha beta gamma', done: true })
      const stream = await ollama.generate({
        model: 'llama3.2',
        prompt: 'delta epsilon zeta eta',
        stream: true,
        options: { num_predict: 2 },
      })
      let text = ''
      let reason: string | undefined
      for await (const chunk of stream) {
        text += chunk.response
        if (chunk.done) reason = chunk.done_reason
      }
      expect(text).toBe('delta epsilon')
      expect(reason).toBe('length')
      const sent = modelCalls(t, '/api/generate').at(-1)?.body
      expect(sent).toMatchObject({ prompt: 'delta epsilon zeta eta', options: { num_predict: 2 } })
    },
    T,
  )

  test(
    'a deterministic request is answered from the cache the second time (it goes through the engine)',
    async () => {
      const request = { model: 'llama3.2', messages: [{ role: 'user' as const, content: 'cache me please' }], options: { temperature: 0 } }
      const before = modelCalls(t, '/api/chat').length
      const first = await ollama.chat(request)
      const second = await ollama.chat(request)
      expect(second.message.content).toBe(first.message.content)
      expect(modelCalls(t, '/api/chat').length).toBe(before + 1)
    },
    T,
  )
})

describe('ollama client: embeddings and model lists', () => {
  test(
    'embed (one input and several) and the legacy embeddings give the fake vectors',
    async () => {
      const one = await ollama.embed({ model: 'nomic-embed-text', input: 'hello' })
      expect(one.embeddings).toEqual([fakeEmbedding('hello', 8)])
      const many = await ollama.embed({ model: 'nomic-embed-text', input: ['a', 'b', 'c'] })
      expect(many.embeddings).toEqual(['a', 'b', 'c'].map((x) => fakeEmbedding(x, 8)))
      const legacy = await ollama.embeddings({ model: 'nomic-embed-text', prompt: 'legacy text' })
      expect(legacy.embedding).toEqual(fakeEmbedding('legacy text', 8))
    },
    T,
  )

  test(
    'list: the union over backends, each name once, in Ollama shape',
    async () => {
      const { models } = await ollama.list()
      expect(models.map((m) => m.name).sort()).toEqual(['llama3.2:latest', 'nomic-embed-text:latest', 'qwen3:8b'])
      expect(models.find((m) => m.name === 'llama3.2:latest')).toMatchObject({ model: 'llama3.2:latest', details: { family: 'llama' } })
      expect(models.every((m) => typeof m.size === 'number' && typeof m.digest === 'string')).toBe(true)
    },
    T,
  )

  test(
    'a backend that goes down leaves the list',
    async () => {
      t.server.deps.engine.scheduler.update('fake1', { healthy: false })
      try {
        const { models } = await ollama.list()
        expect(models.map((m) => m.name).sort()).toEqual(['llama3.2:latest', 'nomic-embed-text:latest'])
      } finally {
        t.server.deps.engine.scheduler.update('fake1', { healthy: true })
      }
    },
    T,
  )

  test(
    'ps lists loaded models; version is the backends’ Ollama version, with orch’s beside it',
    async () => {
      await ollama.generate({ model: 'llama3.2', prompt: 'load it' })
      const { models } = await ollama.ps()
      expect(models.map((m) => m.name)).toContain('llama3.2:latest')
      expect(models[0]).toHaveProperty('expires_at')
      expect(await ollama.version()).toEqual({ version: FAKE_OLLAMA_VERSION, orch_version: '0.0.0-test' } as never)
      const root = await t.fetch('/')
      expect(await root.text()).toBe('Ollama is running')
    },
    T,
  )
})

describe('ollama client: errors', () => {
  test(
    'unknown model: 404 with the reason, as the client’s ResponseError',
    async () => {
      const error = await ollama.chat({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] }).catch((e) => e)
      expect(error.name).toBe('ResponseError')
      expect(error.status_code).toBe(404)
      expect(error.message).toContain('"no-such-model" is not served by any backend')
    },
    T,
  )

  test(
    'validation: 400 naming the field, in Ollama’s {"error"} shape',
    async () => {
      const error = await ollama.chat({ messages: [{ role: 'user', content: 'hi' }] } as any).catch((e) => e)
      expect(error.status_code).toBe(400)
      expect(error.message).toStartWith('model: ')
      const res = await t.fetch('/api/generate', post({ model: 'llama3.2', prompt: 42 }))
      expect(res.status).toBe(400)
      expect(await res.json()).toEqual({ error: expect.stringMatching(/^prompt: /) })
      // A field with no message of its own says what was expected once, and what came.
      const typed = await t.fetch('/api/chat', post({ model: 'llama3.2', messages: [], stream: 'no' }))
      expect(await typed.json()).toEqual({ error: 'stream: expected boolean, got "no"' })
      const header = await t.fetch('/api/chat', post({ model: 'llama3.2', messages: [] }, { 'x-orch-priority': 'high' }))
      expect(header.status).toBe(400)
      expect(((await header.json()) as { error: string }).error).toContain('x-orch-priority')
    },
    T,
  )

  test(
    'a backend 500 is a 502 carrying the backend’s message',
    async () => {
      // Only the first fake serves nomic-embed-text, so the failure is certain to be met.
      t.fakes[0]!.failNext(1, 500, 'the GPU caught fire')
      const error = await ollama.generate({ model: 'nomic-embed-text', prompt: 'fail please' }).catch((e) => e)
      expect(error.status_code).toBe(502)
      expect(error.message).toContain('the GPU caught fire')
    },
    T,
  )

  test(
    'x-orch-tenant and x-orch-priority are accepted',
    async () => {
      const client = new Ollama({ host: t.url, headers: { 'x-orch-tenant': 'team-a', 'x-orch-priority': '5' } })
      const answer = await client.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'tenant call' }] })
      expect(answer.message.content).toBe('tenant call')
    },
    T,
  )
})

describe('ollama client: cancellation', () => {
  test(
    'aborting a stream mid-way cancels the upstream call and frees the slot',
    async () => {
      const fake = t.fakes[0]!
      fake.set({ hang: 'after-first-chunk' })
      t.fakes[1]!.set({ hang: 'after-first-chunk' })
      try {
        const stream = await ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'never ending story' }], stream: true })
        const iterator = stream[Symbol.asyncIterator]()
        const first = await iterator.next()
        expect(first.done ? undefined : first.value.message.content).toBe('never')
        expect(inflight()).toBe(1)
        stream.abort()
        await expect(iterator.next()).rejects.toThrow()
        await Promise.all(t.fakes.map((f) => f.until(() => f.stats.inFlight === 0, 10_000)))
        expect(t.fakes.reduce((n, f) => n + f.stats.abortedCount, 0)).toBeGreaterThanOrEqual(1)
        await waitFor(() => inflight() === 0)
      } finally {
        for (const f of t.fakes) f.set({ hang: false })
      }
    },
    T,
  )

  test(
    'a client that leaves before a non-streamed answer cancels it too',
    async () => {
      for (const f of t.fakes) f.set({ hang: 'before-headers' })
      try {
        const controller = new AbortController()
        const pending = t.fetch('/api/chat', {
          ...post({ model: 'llama3.2', messages: [{ role: 'user', content: 'slow' }], stream: false }),
          signal: controller.signal,
        })
        await waitFor(() => t.fakes.some((f) => f.stats.inFlight === 1))
        controller.abort()
        await expect(pending).rejects.toThrow()
        const aborted = () => t.fakes.flatMap((f) => f.calls).some((c) => c.body?.messages?.[0]?.content === 'slow' && c.aborted)
        await waitFor(aborted)
        await waitFor(() => inflight() === 0)
      } finally {
        for (const f of t.fakes) f.set({ hang: false })
      }
    },
    T,
  )
})

async function waitFor(predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!predicate()) {
    if (performance.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`)
    await Bun.sleep(5)
  }
}
