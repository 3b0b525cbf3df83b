import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Ollama } from 'ollama'
import { collectChat, collectGenerate, createBackend, createBackends } from '../../src/backends/create.ts'
import { ollamaBackend } from '../../src/backends/ollama.ts'
import type { BackendTimeouts } from '../../src/backends/timeouts.ts'
import { BackendError, type ChatChunk, type ChatRequest } from '../../src/backends/types.ts'
import { defaultConfig } from '../../src/config/schema.ts'
import { FAKE_OLLAMA_VERSION, type FakeServer, fakeEmbedding, startFakeOllama } from '../helpers/fake-ollama.ts'
import { startFakeOpenAI } from '../helpers/fake-openai.ts'

const timeouts: BackendTimeouts = { connect_ms: 5000, first_token_ms: 5000, idle_ms: 5000, total_ms: 10000 }
const ask = (content: string, extra: Partial<ChatRequest> = {}): ChatRequest => ({
  model: 'llama3.2',
  messages: [
    { role: 'system', content: 'be brief' },
    { role: 'user', content },
  ],
  ...extra,
})

async function failure(run: () => Promise<unknown>): Promise<BackendError> {
  try {
    await run()
  } catch (error) {
    expect(error).toBeInstanceOf(BackendError)
    return error as BackendError
  }
  throw new Error('expected the call to fail')
}

let fake: FakeServer
beforeAll(async () => {
  fake = await startFakeOllama()
})
afterAll(() => fake.stop())
beforeEach(() => {
  fake.set({ latencyMs: 0, tokenDelayMs: 0, hang: false, loaded: [], models: ['llama3.2', 'nomic-embed-text'] })
  fake.reset()
})
const backend = () => ollamaBackend({ name: 'local', url: fake.url, timeouts })

describe('ollamaBackend chat and generate', () => {
  test('streams one chunk per token, then a done chunk with the stats', async () => {
    const chunks: ChatChunk[] = []
    for await (const chunk of backend().chat(ask('the quick brown fox'))) chunks.push(chunk)
    expect(chunks.map((c) => c.message.content)).toEqual(['the', ' quick', ' brown', ' fox', ''])
    expect(chunks.slice(0, -1).every((c) => !c.done)).toBe(true)
    const last = chunks.at(-1)!
    expect(last).toMatchObject({ model: 'llama3.2', done: true, done_reason: 'stop', eval_count: 4, prompt_eval_count: 6 })
    expect(last.eval_duration).toBeGreaterThan(0)
    expect(fake.calls[0]?.body).toMatchObject({ model: 'llama3.2', stream: true })
  })

  test('collectChat joins the content and keeps the final stats', async () => {
    const answer = await collectChat(backend().chat(ask('hello there world', { options: { temperature: 0, seed: 1 } })))
    expect(answer).toMatchObject({
      done: true,
      done_reason: 'stop',
      eval_count: 3,
      message: { role: 'assistant', content: 'hello there world' },
    })
    expect(fake.calls[0]?.body.options).toEqual({ temperature: 0, seed: 1 })
  })

  test('num_predict cuts the answer and says why', async () => {
    const answer = await collectChat(backend().chat(ask('one two three four', { options: { num_predict: 2 } })))
    expect(answer).toMatchObject({ done_reason: 'length', eval_count: 2, message: { content: 'one two' } })
  })

  test('generate streams the response and ends with context and stats', async () => {
    const chunks = []
    for await (const chunk of backend().generate({ model: 'llama3.2', prompt: 'why is the sky blue' })) chunks.push(chunk)
    expect(chunks.map((c) => c.response).join('')).toBe('why is the sky blue')
    expect(chunks.at(-1)).toMatchObject({ done: true, done_reason: 'stop', eval_count: 5, context: [1, 2, 3, 4, 5] })
    const collected = await collectGenerate(backend().generate({ model: 'llama3.2', prompt: 'short one' }))
    expect(collected).toMatchObject({ response: 'short one', done: true, eval_count: 2 })
  })

  test('images are sent as given, never read as the name of a local file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'orch-image-'))
    const path = join(dir, 'secret.txt')
    writeFileSync(path, 'not for the model')
    try {
      await collectChat(backend().chat(ask('look', { messages: [{ role: 'user', content: 'look', images: [path] }] })))
      await collectGenerate(backend().generate({ model: 'llama3.2', prompt: 'look', images: [path] }))
      expect(fake.calls.map((c) => (c.body.messages?.[0] ?? c.body).images)).toEqual([[path], [path]])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test("leaves the caller's request untouched", async () => {
    const request = ask('look', { messages: [{ role: 'user', content: 'look', images: ['aGVsbG8='] }] })
    const before = structuredClone(request)
    await collectChat(backend().chat(request))
    expect(request).toEqual(before)
    expect(fake.calls[0]?.body.messages[0].images).toEqual(['aGVsbG8='])
  })
})

describe('ollamaBackend reads NDJSON as it arrives', () => {
  /** A server whose answer is written in these pieces, `gapMs` apart. */
  function pieces(parts: (string | Uint8Array)[], gapMs = 5) {
    return Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch: () =>
        new Response(
          new ReadableStream<Uint8Array>({
            async start(controller) {
              for (const part of parts) {
                controller.enqueue(typeof part === 'string' ? new TextEncoder().encode(part) : part)
                await Bun.sleep(gapMs)
              }
              controller.close()
            },
          }),
          { headers: { 'content-type': 'application/x-ndjson' } },
        ),
    })
  }
  const line = (content: string, done = false) =>
    `${JSON.stringify({ model: 'm', created_at: '', message: { role: 'assistant', content }, done })}\n`

  test('lines cut anywhere, a character cut between its bytes, and a last line without its newline', async () => {
    const bytes = new TextEncoder().encode(line('größer ☃') + line(' fin', true).trimEnd())
    const snowman = bytes.indexOf(0xe2) // the first byte of ☃, whose other two come in the next read
    const cuts = [3, snowman + 1, snowman + 2, bytes.length - 5, bytes.length]
    const parts = cuts.map((end, i) => bytes.slice(i === 0 ? 0 : (cuts[i - 1] as number), end))
    const server = pieces(parts)
    try {
      const split = ollamaBackend({ name: 'split', url: `http://127.0.0.1:${server.port}`, timeouts })
      const chunks: ChatChunk[] = []
      for await (const chunk of split.chat(ask('x'))) chunks.push(chunk)
      expect(chunks.map((c) => c.message.content)).toEqual(['größer ☃', ' fin'])
      expect(chunks.at(-1)?.done).toBe(true)
    } finally {
      await server.stop(true)
    }
  })

  test('a line that is not JSON breaks the stream (a retryable protocol error), nothing is skipped', async () => {
    const server = pieces([line('one'), 'not json\n', line('', true)])
    try {
      const broken = ollamaBackend({ name: 'broken', url: `http://127.0.0.1:${server.port}`, timeouts })
      const error = await failure(() => collectChat(broken.chat(ask('x'))))
      expect(error).toMatchObject({ kind: 'protocol', retryable: true })
      expect(error.message).toContain('not JSON')
    } finally {
      await server.stop(true)
    }
  })

  test('idle_ms counts from the last whole line: bytes of a line that never ends do not reset it', async () => {
    const half = line('second')
    const server = pieces([line('first'), half.slice(0, 10), half.slice(10, 20), half.slice(20, 30)], 150)
    try {
      const short = { ...timeouts, idle_ms: 250 }
      const slow = ollamaBackend({ name: 'slow', url: `http://127.0.0.1:${server.port}`, timeouts: short })
      const started = performance.now()
      const error = await failure(() => collectChat(slow.chat(ask('x'))))
      expect(error).toMatchObject({ kind: 'timeout' })
      expect(error.message).toContain('idle_ms 250 ms')
      // The first line at ~0 ms, then a piece every 150 ms: 250 ms after the first line, not after a piece.
      expect(performance.now() - started).toBeLessThan(420)
    } finally {
      await server.stop(true)
    }
  })
})

describe('ollamaBackend embed and metadata', () => {
  test('embeds one input and a batch, in order', async () => {
    const one = await backend().embed({ model: 'nomic-embed-text', input: 'alpha' })
    expect(one.embeddings).toEqual([fakeEmbedding('alpha', 8)])
    const batch = await backend().embed({ model: 'nomic-embed-text', input: ['a', 'b c', 'd'] })
    expect(batch).toMatchObject({ model: 'nomic-embed-text', prompt_eval_count: 4 })
    expect(batch.embeddings).toEqual(['a', 'b c', 'd'].map((t) => fakeEmbedding(t, 8)))
    expect(fake.calls.map((c) => c.path)).toEqual(['/api/embed', '/api/embed'])
  })

  test('lists served models (/api/tags) and loaded ones (/api/ps)', async () => {
    const models = await backend().listModels()
    expect(models.map((m) => m.name)).toEqual(['llama3.2:latest', 'nomic-embed-text:latest'])
    expect(models[0]).toMatchObject({ model: 'llama3.2:latest', details: { family: 'llama' } })
    expect(await backend().loadedModels()).toEqual([])
    await collectChat(backend().chat(ask('load it')))
    const loaded = await backend().loadedModels()
    expect(loaded.map((m) => m.name)).toEqual(['llama3.2:latest'])
    expect(loaded[0]?.size_vram).toBeGreaterThan(0)
    expect(fake.calls.map((c) => c.path)).toContain('/api/ps')
  })

  test('health reports the version and the latency', async () => {
    fake.set({ latencyMs: 20 })
    const health = await backend().health()
    expect(health).toMatchObject({ ok: true, version: FAKE_OLLAMA_VERSION })
    expect(health.latency_ms).toBeGreaterThanOrEqual(15)
  })
})

describe('ollamaBackend errors', () => {
  test("an unknown model is http 404, not retryable, with Ollama's message", async () => {
    const error = await failure(() => collectChat(backend().chat(ask('x', { model: 'missing' }))))
    expect(error).toMatchObject({ kind: 'http', status: 404, retryable: false, backend: 'local', code: 'E_BACKEND_HTTP' })
    expect(error.message).toContain('model "missing" not found, try pulling it first')
    expect((await failure(() => backend().embed({ model: 'missing', input: 'x' }))).status).toBe(404)
  })

  test('500 and 429 are retryable; the next call succeeds', async () => {
    fake.failNext(1, 500, 'llama runner process has terminated')
    const error = await failure(() => collectChat(backend().chat(ask('x'))))
    expect(error).toMatchObject({ kind: 'http', status: 500, retryable: true })
    expect(error.message).toContain('llama runner process has terminated')
    fake.failNext(1, 429)
    expect(await failure(() => backend().embed({ model: 'nomic-embed-text', input: 'x' }))).toMatchObject({ status: 429, retryable: true })
    expect((await collectChat(backend().chat(ask('fine now')))).message.content).toBe('fine now')
  })

  test('a refused connection is kind connect and retryable; health says not ok', async () => {
    const gone = await startFakeOllama()
    const url = gone.url
    await gone.stop()
    const dead = ollamaBackend({ name: 'dead', url, timeouts })
    const error = await failure(() => collectChat(dead.chat(ask('x'))))
    expect(error).toMatchObject({ kind: 'connect', retryable: true, backend: 'dead' })
    expect(await failure(() => dead.listModels())).toMatchObject({ kind: 'connect' })
    const health = await dead.health()
    expect(health.ok).toBe(false)
    // orch's words, never Bun's hints ("Is the computer able to access the url?").
    const said = `dead: cannot connect to ${url}: connection refused (nothing listens on that port)`
    expect(error.message).toBe(said)
    expect(health.error).toBe(said)
  })

  test('an error line mid-stream, or a stream without done, is a retryable protocol error', async () => {
    const line = (o: unknown) => `${JSON.stringify(o)}\n`
    const first = line({ model: 'm', created_at: '', message: { role: 'assistant', content: 'par' }, done: false })
    const bodies = [first + line({ error: 'an error was encountered while running the model' }), first]
    const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response(bodies.shift() ?? '') })
    try {
      const broken = ollamaBackend({ name: 'broken', url: `http://127.0.0.1:${server.port}`, timeouts })
      const midway = await failure(() => collectChat(broken.chat(ask('x'))))
      expect(midway).toMatchObject({ kind: 'protocol', retryable: true })
      expect(midway.message).toContain('an error was encountered while running the model')
      expect((await failure(() => collectChat(broken.chat(ask('x'))))).message).toContain('the stream ended before done')
    } finally {
      await server.stop(true)
    }
  })

  test('breaking out of the stream closes the request', async () => {
    fake.set({ tokenDelayMs: 20 })
    for await (const chunk of backend().chat(ask('a b c d e f g h'))) {
      expect(chunk.message.content).toBe('a')
      break
    }
    await fake.until(() => fake.calls[0]?.aborted === true)
    expect(fake.stats).toMatchObject({ inFlight: 0, abortedCount: 1 })
  })
})

describe('registry', () => {
  test('createBackends builds the configured backends (default: one local Ollama)', () => {
    const [only, ...rest] = createBackends(defaultConfig())
    expect(rest).toEqual([])
    expect(only).toMatchObject({ name: 'ollama', type: 'ollama', url: 'http://127.0.0.1:11434' })
    const openai = createBackend({ name: 'vllm', type: 'openai', url: 'http://127.0.0.1:8000', concurrency: 4 }, timeouts)
    expect(openai).toMatchObject({ name: 'vllm', type: 'openai' })
  })

  test('api_key_env: the token is read from that variable and sent as a bearer token, to both kinds of server', async () => {
    const guardedOllama = await startFakeOllama({ apiKey: 'o-secret', models: ['llama3.2'] })
    const guardedOpenAI = await startFakeOpenAI({ apiKey: 'v-secret', models: ['qwen'] })
    try {
      const config = {
        ...defaultConfig(),
        backends: [
          { name: 'proxied', type: 'ollama' as const, url: guardedOllama.url, concurrency: 4, api_key_env: 'TEST_OLLAMA_KEY' },
          { name: 'vllm', type: 'openai' as const, url: guardedOpenAI.url, concurrency: 4, api_key_env: 'TEST_VLLM_KEY' },
        ],
      }
      const withKeys = createBackends(config, { TEST_OLLAMA_KEY: 'o-secret', TEST_VLLM_KEY: 'v-secret' })
      const lists = await Promise.all(withKeys.map((b) => b.listModels()))
      expect(lists.map((models) => models.map((m) => m.name))).toEqual([['llama3.2:latest'], ['qwen']])
      const answer = await collectChat(withKeys[0]!.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi there' }] }))
      expect(answer.message.content).toBe('hi there')

      // The variable unset: requests go without a token (said once on stderr), and the server refuses them.
      for (const backend of createBackends(config, {})) {
        const error = await backend.listModels().catch((e: unknown) => e)
        expect(error).toBeInstanceOf(BackendError)
        expect((error as BackendError).status).toBe(401)
      }
    } finally {
      await guardedOllama.stop()
      await guardedOpenAI.stop()
    }
  })
})

describe('fake-ollama speaks the real wire format', () => {
  test('the official ollama client streams, collects, embeds, lists and sees errors', async () => {
    const client = new Ollama({ host: fake.url })
    const parts: string[] = []
    let final: any
    for await (const part of await client.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi you' }], stream: true })) {
      parts.push(part.message.content)
      final = part
    }
    expect(parts.join('')).toBe('hi you')
    expect(final).toMatchObject({ done: true, done_reason: 'stop', eval_count: 2 })
    const whole = await client.generate({ model: 'llama3.2', prompt: 'abc def', stream: false })
    expect(whole).toMatchObject({ response: 'abc def', done: true })
    expect((await client.embed({ model: 'nomic-embed-text', input: ['x', 'y'] })).embeddings).toHaveLength(2)
    expect((await client.embeddings({ model: 'nomic-embed-text', prompt: 'x' })).embedding).toHaveLength(8)
    expect((await client.list()).models.map((m) => m.name)).toContain('nomic-embed-text:latest')
    expect((await client.ps()).models.map((m) => m.name)).toEqual(['llama3.2:latest', 'nomic-embed-text:latest'])
    expect((await client.version()).version).toBe(FAKE_OLLAMA_VERSION)
    expect((await client.show({ model: 'llama3.2' })).capabilities).toEqual(['completion'])
    const error: any = await client.chat({ model: 'nope', messages: [] }).catch((e) => e)
    expect(error).toMatchObject({ name: 'ResponseError', status_code: 404, error: 'model "nope" not found, try pulling it first' })
  })

  test('counts calls in flight per model; parallel and callCostMs serialise the work', async () => {
    fake.set({ parallel: 1, callCostMs: 30 })
    try {
      const started = performance.now()
      const embed = (input: string) => backend().embed({ model: 'nomic-embed-text', input })
      await Promise.all([embed('a'), embed('b'), embed('c'), collectChat(backend().chat(ask('x')))])
      expect(performance.now() - started).toBeGreaterThanOrEqual(85) // three 30 ms embeds, one at a time
      expect(fake.stats).toMatchObject({ total: 4, inFlight: 0, maxInFlight: 4 })
      expect(fake.stats.maxInFlightByModel).toEqual({ 'nomic-embed-text': 3, 'llama3.2': 1 })
      expect(fake.calls.every((c) => c.endedAt !== undefined && c.status === 200 && !c.aborted)).toBe(true)
    } finally {
      fake.set({ parallel: Number.POSITIVE_INFINITY, callCostMs: 0 })
    }
  })

  test('raw HTTP: NDJSON lines, done last; one JSON object with stream false', async () => {
    const post = (body: unknown) => fetch(`${fake.url}/api/chat`, { method: 'POST', body: JSON.stringify(body) })
    const streamed = await post({ model: 'llama3.2', messages: [{ role: 'user', content: 'a b' }] })
    expect(streamed.headers.get('content-type')).toBe('application/x-ndjson')
    const lines = (await streamed.text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(lines.map((l) => l.done)).toEqual([false, false, true])
    const single = await post({ model: 'llama3.2', messages: [{ role: 'user', content: 'a b' }], stream: false })
    expect(await single.json()).toMatchObject({ message: { content: 'a b' }, done: true })
    expect((await fetch(`${fake.url}/api/nothing`)).status).toBe(404)
  })
})
