import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'bun:test'
import { collectChat, collectGenerate } from '../../src/backends/create.ts'
import { openaiBackend } from '../../src/backends/openai.ts'
import { chatChunks, sseEvents } from '../../src/backends/openai-wire.ts'
import { type BackendTimeouts, toBackendError } from '../../src/backends/timeouts.ts'
import { BackendError, type ChatChunk, type ChatRequest } from '../../src/backends/types.ts'
import { type FakeServer, fakeEmbedding, startFakeOpenAI } from '../helpers/fake-openai.ts'

const timeouts: BackendTimeouts = { connect_ms: 5000, first_token_ms: 5000, idle_ms: 5000, total_ms: 10000 }
const MODEL = 'qwen2.5-7b-instruct'
const ask = (content: string, extra: Partial<ChatRequest> = {}): ChatRequest => ({
  model: MODEL,
  messages: [
    { role: 'system', content: 'be brief' },
    { role: 'user', content },
  ],
  ...extra,
})

async function failure(run: () => Promise<unknown>): Promise<BackendError> {
  const error = await run().then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error).toBeInstanceOf(BackendError)
  return error as BackendError
}

let fake: FakeServer
beforeAll(async () => {
  fake = await startFakeOpenAI()
})
afterAll(() => fake.stop())
beforeEach(() => {
  fake.set({ tokenDelayMs: 0, hang: false })
  fake.reset()
})
const backend = (url = fake.url, apiKey?: string) => openaiBackend({ name: 'vllm', url, apiKey, timeouts })

describe('openaiBackend chat and generate', () => {
  test('streams deltas as chunks and ends with done, done_reason and the usage counts', async () => {
    const chunks: ChatChunk[] = []
    for await (const chunk of backend().chat(ask('the quick brown fox'))) chunks.push(chunk)
    expect(chunks.map((c) => c.message.content)).toEqual(['the', ' quick', ' brown', ' fox', ''])
    expect(chunks.at(-1)).toMatchObject({ model: MODEL, done: true, done_reason: 'stop', prompt_eval_count: 6, eval_count: 4 })
    expect(chunks.slice(0, -1).every((c) => c.done === false && c.message.role === 'assistant')).toBe(true)
  })

  test('maps Ollama options to OpenAI fields and asks for usage', async () => {
    const answer = await collectChat(
      backend().chat(
        ask('one two three', { options: { temperature: 0, top_p: 0.9, seed: 7, num_predict: 2, stop: ['\n'] }, format: 'json' }),
      ),
    )
    expect(answer).toMatchObject({ done_reason: 'length', eval_count: 2, message: { content: 'one two' } })
    expect(fake.calls[0]?.body).toEqual({
      model: MODEL,
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'one two three' },
      ],
      stream: true,
      stream_options: { include_usage: true },
      temperature: 0,
      top_p: 0.9,
      seed: 7,
      max_tokens: 2,
      stop: ['\n'],
      response_format: { type: 'json_object' },
    })
  })

  test('generate uses /v1/completions', async () => {
    const answer = await collectGenerate(backend().generate({ model: MODEL, prompt: 'why is the sky blue' }))
    expect(answer).toMatchObject({ response: 'why is the sky blue', done: true, done_reason: 'stop', eval_count: 5 })
    expect(fake.calls[0]?.path).toBe('/v1/completions')
  })

  test('tool call deltas are joined into Ollama tool_calls on the final chunk', async () => {
    const sse = [
      {
        choices: [
          { index: 0, delta: { role: 'assistant', tool_calls: [{ index: 0, id: 'c1', function: { name: 'get_', arguments: '{"ci' } }] } },
        ],
      },
      { choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { name: 'weather', arguments: 'ty":"Oslo"}' } }] } }] },
      { choices: [{ index: 0, delta: {}, finish_reason: 'tool_calls' }], timings: { prompt_ms: 2, predicted_ms: 3 } },
    ]
      .map((e) => `data: ${JSON.stringify(e)}\n\n`)
      .join('')
    const chunks = await Array.fromAsync(chatChunks(sseEvents(new Response(`${sse}data: [DONE]\n\n`).body!), MODEL))
    expect(chunks).toHaveLength(1)
    expect(chunks[0]).toMatchObject({
      done: true,
      done_reason: 'stop',
      prompt_eval_duration: 2_000_000,
      eval_duration: 3_000_000,
      message: { tool_calls: [{ function: { name: 'get_weather', arguments: { city: 'Oslo' } } }] },
    })
  })
})

describe('openaiBackend embed and metadata', () => {
  test('embeds a batch in index order (the fake answers them reversed)', async () => {
    const result = await backend().embed({ model: 'bge-small', input: ['a', 'b', 'c d'] })
    expect(result.embeddings).toEqual(['a', 'b', 'c d'].map((t) => fakeEmbedding(t, 8)))
    expect(result).toMatchObject({ model: 'bge-small', prompt_eval_count: 4 })
    expect((await backend().embed({ model: 'bge-small', input: 'solo' })).embeddings).toEqual([fakeEmbedding('solo', 8)])
  })

  test('lists /v1/models as both the served and the loaded models', async () => {
    const names = ['qwen2.5-7b-instruct', 'bge-small']
    expect((await backend().listModels()).map((m) => m.name)).toEqual(names)
    expect((await backend().loadedModels()).map((m) => m.model)).toEqual(names)
  })

  test('health uses /v1/models, falling back to /health', async () => {
    expect(await backend().health()).toMatchObject({ ok: true })
    const bare = await startFakeOpenAI({ modelsEndpoint: false })
    try {
      expect(await backend(bare.url).health()).toMatchObject({ ok: true })
      expect(bare.calls.map((c) => c.path)).toEqual(['/v1/models', '/health'])
    } finally {
      await bare.stop()
    }
  })

  test('sends the API key as a bearer token; a wrong one is http 401', async () => {
    const locked = await startFakeOpenAI({ apiKey: 'sk-test' })
    try {
      expect((await collectChat(backend(`${locked.url}/v1`, 'sk-test').chat(ask('ok')))).message.content).toBe('ok')
      const error = await failure(() => backend(locked.url, 'wrong').listModels())
      expect(error).toMatchObject({ kind: 'http', status: 401, retryable: false })
      expect(error.message).toContain('Invalid API key')
    } finally {
      await locked.stop()
    }
  })
})

describe('openaiBackend errors', () => {
  test('unknown model: http 404 with the server message, not retryable', async () => {
    const error = await failure(() => collectChat(backend().chat(ask('x', { model: 'nope' }))))
    expect(error).toMatchObject({ kind: 'http', status: 404, retryable: false })
    expect(error.message).toContain('The model `nope` does not exist.')
  })

  test('500 is retryable', async () => {
    fake.failNext(1, 500, 'CUDA out of memory')
    const error = await failure(() => backend().embed({ model: 'bge-small', input: 'x' }))
    expect(error).toMatchObject({ kind: 'http', status: 500, retryable: true })
    expect(error.message).toContain('CUDA out of memory')
  })

  test('a refused connection is kind connect, retryable', async () => {
    const gone = await startFakeOpenAI()
    const url = gone.url
    await gone.stop()
    const error = await failure(() => collectChat(backend(url).chat(ask('x'))))
    expect(error).toMatchObject({ kind: 'connect', retryable: true })
    const health = await backend(url).health()
    expect(health.ok).toBe(false)
    expect(error.message).toMatch(/^\w+: cannot connect to http:\/\/127\.0\.0\.1:\d+: connection refused \(nothing listens on that port\)$/)
    expect(health.error).toBe(error.message)
  })

  test('a stream that stops without a finish_reason is a retryable protocol error', async () => {
    const cut = new Response(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: 'par' } }] })}\n\n`).body!
    const error = await Array.fromAsync(chatChunks(sseEvents(cut), MODEL)).catch((e) => e)
    expect(error.name).toBe('StreamFailure')
    expect(toBackendError('vllm', error)).toMatchObject({ kind: 'protocol', retryable: true })
  })

  test('caller abort mid-stream, and breaking out early, close the request', async () => {
    fake.set({ tokenDelayMs: 30 })
    const controller = new AbortController()
    const seen: string[] = []
    const error = await failure(async () => {
      for await (const chunk of backend().chat(ask('a b c d e f g h'), { signal: controller.signal })) {
        seen.push(chunk.message.content)
        controller.abort()
      }
    })
    expect(error).toMatchObject({ kind: 'aborted', retryable: false })
    expect(seen).toEqual(['a'])
    for await (const _ of backend().generate({ model: MODEL, prompt: 'a b c d e f g h' })) break
    await fake.until(() => fake.stats.abortedCount === 2 && fake.stats.inFlight === 0)
    expect(fake.calls.every((c) => c.aborted)).toBe(true)
  })
})
