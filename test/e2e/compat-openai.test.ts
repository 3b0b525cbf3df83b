/**
 * The official `openai` npm client pointed at a running `orch serve` (baseURL `<url>/v1`) in front of a
 * fake Ollama: chat completions and completions (plain and streamed), embeddings (`dimensions`, usage),
 * models, parameter conversion, errors as the client's error classes with OpenAI's codes (the gates'
 * included), and a stream the client abandons cancelling upstream.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import OpenAI from 'openai'
import { fakeEmbedding } from '../helpers/fake-ollama.ts'
import { startTestServe, type TestServe } from '../helpers/serve.ts'

/** A unit vector's first `n` values, re-normalised: what OpenAI's text-embedding-3 models answer for `dimensions: n`. */
const shortened = (v: number[], n: number) => {
  const cut = v.slice(0, n)
  const norm = Math.hypot(...cut)
  return cut.map((x) => x / norm)
}

const T = 30_000
let t: TestServe
let openai: OpenAI

beforeAll(async () => {
  // Embedding requests within 100 ms of each other share one backend call (one test counts on it).
  t = await startTestServe({ tweak: (c) => (c.infrastructure_system.llm_orchestration.batching.batch_interval_seconds = 0.1) })
  // No retries: the client would retry 429 and 5xx on its own, and these tests look at the first answer.
  openai = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: 'any', maxRetries: 0 })
})
afterAll(() => t?.stop())

const fake = () => t.fakes[0]!
const lastCall = (path: string) =>
  fake()
    .calls.filter((c) => c.path === path)
    .at(-1)
const inflight = () => t.server.deps.engine.scheduler.stats().inflight

describe('openai client: chat completions', () => {
  test(
    'non-streamed: a chat.completion with the echo, finish_reason and usage from the eval counts',
    async () => {
      const answer = await openai.chat.completions.create({
        model: 'llama3.2',
        messages: [
          { role: 'system', content: 'you echo' },
          { role: 'user', content: 'why is the sky blue' },
        ],
      })
      expect(answer.object).toBe('chat.completion')
      expect(answer.id).toStartWith('chatcmpl-')
      expect(answer.model).toBe('llama3.2')
      expect(answer.choices[0]).toMatchObject({
        index: 0,
        message: { role: 'assistant', content: 'why is the sky blue' },
        finish_reason: 'stop',
      })
      expect(answer.usage).toEqual({ prompt_tokens: 7, completion_tokens: 5, total_tokens: 12 })
    },
    T,
  )

  test(
    'streamed: deltas join to the echo, the role first, finish_reason last, then usage when asked',
    async () => {
      const stream = await openai.chat.completions.create({
        model: 'llama3.2',
        messages: [{ role: 'user', content: 'one two three' }],
        stream: true,
        stream_options: { include_usage: true },
      })
      const chunks: OpenAI.ChatCompletionChunk[] = []
      for await (const chunk of stream) chunks.push(chunk)
      expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0]?.id)).toBe(true)
      expect(chunks[0]?.choices[0]?.delta.role).toBe('assistant')
      expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('one two three')
      const withChoices = chunks.filter((c) => c.choices.length > 0)
      expect(withChoices.at(-1)?.choices[0]?.finish_reason).toBe('stop')
      expect(withChoices.slice(0, -1).every((c) => c.choices[0]?.finish_reason === null)).toBe(true)
      expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { prompt_tokens: 3, completion_tokens: 3, total_tokens: 6 } })
    },
    T,
  )

  test(
    'SSE on the wire: data lines, ending with data: [DONE]',
    async () => {
      const res = await t.fetch('/v1/chat/completions', {
        method: 'POST',
        body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'wire check' }], stream: true }),
      })
      expect(res.headers.get('content-type')).toBe('text/event-stream')
      const events = (await res.text()).split('\n\n').filter(Boolean)
      expect(events.every((e) => e.startsWith('data: '))).toBe(true)
      expect(events.at(-1)).toBe('data: [DONE]')
      expect(JSON.parse(events.at(-2)!.slice(6)).choices[0]).toMatchObject({ delta: {}, finish_reason: 'stop' })
    },
    T,
  )

  test(
    'parameters become Ollama options; max_tokens cuts the answer with finish_reason length',
    async () => {
      const answer = await openai.chat.completions.create({
        model: 'llama3.2',
        messages: [
          { role: 'developer', content: 'be terse' },
          { role: 'user', content: [{ type: 'text', text: 'alpha beta gamma delta' }] },
        ],
        temperature: 0.2,
        top_p: 0.9,
        max_tokens: 2,
        stop: 'END',
        seed: 7,
        frequency_penalty: 0.5,
        response_format: { type: 'json_object' },
      })
      expect(answer.choices[0]?.message.content).toBe('alpha beta')
      expect(answer.choices[0]?.finish_reason).toBe('length')
      const sent = lastCall('/api/chat')?.body
      expect(sent.options).toEqual({ temperature: 0.2, top_p: 0.9, num_predict: 2, stop: ['END'], seed: 7, frequency_penalty: 0.5 })
      expect(sent.format).toBe('json')
      expect(sent.messages[0]).toEqual({ role: 'system', content: 'be terse' })
      await openai.chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'x y z' }], max_completion_tokens: 1 })
      expect(lastCall('/api/chat')?.body.options).toEqual({ num_predict: 1 })
    },
    T,
  )

  test(
    'tool calls in the history reach Ollama with parsed arguments, and tool results with the tool name',
    async () => {
      await openai.chat.completions.create({
        model: 'llama3.2',
        messages: [
          { role: 'user', content: 'weather?' },
          {
            role: 'assistant',
            content: null,
            tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }],
          },
          { role: 'tool', tool_call_id: 'call_1', content: 'sunny' },
          { role: 'user', content: 'thanks' },
        ],
        tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: {} } } }],
      })
      const sent = lastCall('/api/chat')?.body
      expect(sent.messages[1]).toEqual({
        role: 'assistant',
        content: '',
        tool_calls: [{ function: { name: 'get_weather', arguments: { city: 'Oslo' } } }],
      })
      expect(sent.messages[2]).toEqual({ role: 'tool', content: 'sunny', tool_name: 'get_weather' })
      expect(sent.tools[0].function.name).toBe('get_weather')
    },
    T,
  )
})

describe('openai client: completions, embeddings, models', () => {
  test(
    'completions, plain and streamed',
    async () => {
      const answer = await openai.completions.create({ model: 'llama3.2', prompt: 'once upon a time' })
      expect(answer).toMatchObject({ object: 'text_completion', choices: [{ index: 0, text: 'once upon a time', finish_reason: 'stop' }] })
      expect(answer.usage?.completion_tokens).toBe(4)
      const stream = await openai.completions.create({ model: 'llama3.2', prompt: 'a b c d', stream: true, max_tokens: 3 })
      let text = ''
      let finish: string | null | undefined
      for await (const chunk of stream) {
        text += chunk.choices[0]?.text ?? ''
        finish = chunk.choices[0]?.finish_reason ?? finish
      }
      expect(text).toBe('a b c')
      expect(finish).toBe('length')
    },
    T,
  )

  test(
    'embeddings: float vectors equal the fake’s; the client’s default base64 decodes to the same',
    async () => {
      const floats = await openai.embeddings.create({ model: 'nomic-embed-text', input: ['red', 'green'], encoding_format: 'float' })
      expect(floats.object).toBe('list')
      expect(floats.data.map((d) => d.index)).toEqual([0, 1])
      expect(floats.data.map((d) => d.embedding)).toEqual([fakeEmbedding('red', 8), fakeEmbedding('green', 8)])
      const packed = await openai.embeddings.create({ model: 'nomic-embed-text', input: 'blue' })
      const expected = fakeEmbedding('blue', 8)
      const got = Array.from(packed.data[0]!.embedding as ArrayLike<number>)
      expect(got.length).toBe(8)
      got.forEach((x, i) => {
        expect(x).toBeCloseTo(expected[i]!, 6)
      })
    },
    T,
  )

  test(
    'embeddings: dimensions reach Ollama; the vectors come back that long and unit length, even from an Ollama that ignores it',
    async () => {
      const answer = await openai.embeddings.create({
        model: 'nomic-embed-text',
        input: ['cyan', 'teal'],
        dimensions: 3,
        encoding_format: 'float',
      })
      expect(lastCall('/api/embed')?.body).toMatchObject({ model: 'nomic-embed-text', input: ['cyan', 'teal'], dimensions: 3 })
      // The fake answers all 8 dimensions, as Ollama before `dimensions` did: orch cuts and re-normalises.
      expect(answer.data.map((d) => d.embedding.length)).toEqual([3, 3])
      answer.data.forEach((d, i) => {
        const expected = shortened(fakeEmbedding(['cyan', 'teal'][i]!, 8), 3)
        d.embedding.forEach((x, j) => {
          expect(x).toBeCloseTo(expected[j]!, 12)
        })
        expect(Math.hypot(...d.embedding)).toBeCloseTo(1, 12)
      })
      const packed = await openai.embeddings.create({ model: 'nomic-embed-text', input: 'magenta', dimensions: 2 })
      expect(Array.from(packed.data[0]!.embedding as ArrayLike<number>).length).toBe(2)
    },
    T,
  )

  test(
    'embeddings: dimensions above the model’s, or not a positive integer, are a 400 naming dimensions',
    async () => {
      const tooMany = await openai.embeddings.create({ model: 'nomic-embed-text', input: 'ochre', dimensions: 9 }).catch((e) => e)
      expect(tooMany).toBeInstanceOf(OpenAI.BadRequestError)
      expect(tooMany.error).toMatchObject({ type: 'invalid_request_error', param: 'dimensions', code: 'invalid_value' })
      expect(tooMany.message).toContain('has 8 dimensions, fewer than the 9 asked for')
      for (const dimensions of [0, -1, 1.5, '4']) {
        const bad = await openai.embeddings.create({ model: 'nomic-embed-text', input: 'ochre', dimensions } as any).catch((e) => e)
        expect(bad.status, String(dimensions)).toBe(400)
        expect(bad.message).toContain('dimensions: expected a positive integer')
      }
    },
    T,
  )

  test(
    'embeddings: usage counts the tokens Ollama reported',
    async () => {
      const answer = await openai.embeddings.create({
        model: 'nomic-embed-text',
        input: ['one two three', 'four'],
        encoding_format: 'float',
      })
      const call = lastCall('/api/embed')
      expect(call?.body.input).toEqual(['one two three', 'four'])
      // The fake reports one token per word: prompt_eval_count 4.
      expect(answer.usage).toEqual({ prompt_tokens: 4, total_tokens: 4 })
      const single = await openai.embeddings.create({ model: 'nomic-embed-text', input: 'five six', encoding_format: 'float' })
      expect(single.usage).toEqual({ prompt_tokens: 2, total_tokens: 2 })
    },
    T,
  )

  test(
    'embeddings: requests coalesced into one Ollama call share its token count, by input length',
    async () => {
      const before = fake().calls.filter((c) => c.path === '/api/embed').length
      const [a, b] = await Promise.all([
        openai.embeddings.create({ model: 'nomic-embed-text', input: 'seven eight nine ten', encoding_format: 'float' }),
        openai.embeddings.create({ model: 'nomic-embed-text', input: 'eleven', encoding_format: 'float' }),
      ])
      const calls = fake()
        .calls.filter((c) => c.path === '/api/embed')
        .slice(before)
      expect(calls.length).toBe(1)
      expect([...calls[0]!.body.input].sort()).toEqual(['eleven', 'seven eight nine ten'])
      // 5 tokens for the call; 20 and 6 characters of input.
      expect([a?.usage.prompt_tokens, b?.usage.prompt_tokens]).toEqual([4, 1])
    },
    T,
  )

  test(
    'models: list and retrieve',
    async () => {
      const list = await openai.models.list()
      expect(list.data.map((m) => m.id).sort()).toEqual(['llama3.2:latest', 'nomic-embed-text:latest'])
      expect(list.data[0]).toMatchObject({ object: 'model', owned_by: 'orch' })
      expect(await openai.models.retrieve('llama3.2')).toMatchObject({ id: 'llama3.2:latest', object: 'model' })
      const missing = await openai.models.retrieve('nope').catch((e) => e)
      expect(missing).toBeInstanceOf(OpenAI.NotFoundError)
    },
    T,
  )
})

describe('openai client: errors', () => {
  test(
    'with server.token: a wrong or missing key is an AuthenticationError, code invalid_api_key',
    async () => {
      const guarded = await startTestServe({ tweak: (c) => (c.server.token = 'a-long-enough-test-token') })
      try {
        const wrong = new OpenAI({ baseURL: `${guarded.url}/v1`, apiKey: 'wrong', maxRetries: 0 })
        const error = await wrong.chat.completions
          .create({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] })
          .catch((e) => e)
        expect(error).toBeInstanceOf(OpenAI.AuthenticationError)
        expect(error.error).toMatchObject({
          type: 'authentication_error',
          code: 'invalid_api_key',
          param: null,
          orch_code: 'E_UNAUTHORIZED',
        })
        // No key at all (the client refuses to send none): the same answer, before routing, on any /v1 path.
        for (const path of ['/v1/models', '/v1/nowhere']) {
          const res = await fetch(`${guarded.url}${path}`)
          expect(res.status, path).toBe(401)
          expect(((await res.json()) as any).error, path).toMatchObject({
            type: 'authentication_error',
            code: 'invalid_api_key',
            orch_code: 'E_UNAUTHORIZED',
          })
        }
        const client = new OpenAI({ baseURL: `${guarded.url}/v1`, apiKey: 'a-long-enough-test-token', maxRetries: 0 })
        expect((await client.models.list()).data.length).toBeGreaterThan(0)
      } finally {
        await guarded.stop()
      }
    },
    T,
  )

  test(
    'unknown model: NotFoundError (404) with the reason',
    async () => {
      const error = await openai.chat.completions
        .create({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] })
        .catch((e) => e)
      expect(error).toBeInstanceOf(OpenAI.NotFoundError)
      expect(error.status).toBe(404)
      expect(error.message).toContain('"no-such-model" is not served by any backend')
    },
    T,
  )

  test(
    'unknown model: code model_not_found on chat, completions, embeddings, responses and models',
    async () => {
      const calls: [string, () => Promise<unknown>][] = [
        ['chat', () => openai.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'hi' }] })],
        ['chat stream', () => openai.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'hi' }], stream: true })],
        ['completions', () => openai.completions.create({ model: 'nope', prompt: 'hi' })],
        ['embeddings', () => openai.embeddings.create({ model: 'nope', input: 'hi' })],
        ['responses', () => openai.responses.create({ model: 'nope', input: 'hi' })],
        ['responses stream', () => openai.responses.create({ model: 'nope', input: 'hi', stream: true })],
        ['models', () => openai.models.retrieve('nope')],
      ]
      for (const [name, call] of calls) {
        const error: any = await call().catch((e) => e)
        expect(error, name).toBeInstanceOf(OpenAI.NotFoundError)
        expect(error.code, name).toBe('model_not_found')
        expect(error.type, name).toBe('invalid_request_error')
        expect(error.error.orch_code, name).toBe('E_MODEL_NOT_FOUND')
      }
    },
    T,
  )

  test(
    'the gates before routing speak OpenAI’s dialect under /v1: foreign origin, oversized body, unknown path, /v1 itself',
    async () => {
      const foreign = await t.fetch('/v1/chat/completions', {
        method: 'POST',
        headers: { origin: 'https://evil.example' },
        body: JSON.stringify({ model: 'llama3.2', messages: [] }),
      })
      expect(foreign.status).toBe(403)
      expect(await foreign.json()).toEqual({
        error: {
          message: expect.stringContaining('is not allowed'),
          type: 'permission_error',
          param: null,
          code: null,
          orch_code: 'E_ORIGIN_NOT_ALLOWED',
        },
      })
      const big = await openai.embeddings.create({ model: 'nomic-embed-text', input: 'x'.repeat(1536 * 1024) }).catch((e) => e)
      expect(big.status).toBe(413)
      expect(big.error).toMatchObject({ type: 'invalid_request_error', orch_code: 'E_BODY_TOO_LARGE' })
      for (const path of ['/v1/nowhere', '/v1']) {
        const missing = await t.fetch(path)
        expect(missing.status, path).toBe(404)
        expect(((await missing.json()) as any).error, path).toMatchObject({
          type: 'invalid_request_error',
          code: null,
          orch_code: 'E_NOT_FOUND',
          param: null,
        })
      }
      const wrongMethod = await t.fetch('/v1/responses')
      expect(wrongMethod.status).toBe(405)
      expect(((await wrongMethod.json()) as any).error).toMatchObject({ type: 'invalid_request_error', orch_code: 'E_HTTP_405' })
    },
    T,
  )

  test(
    'validation: a missing field is missing_required_parameter, a wrong one invalid_value',
    async () => {
      const missing = await openai.chat.completions.create({ model: 'llama3.2' } as any).catch((e) => e)
      expect(missing.error).toMatchObject({
        type: 'invalid_request_error',
        param: 'messages',
        code: 'missing_required_parameter',
        orch_code: 'E_VALIDATION',
      })
      const wrong = await openai.chat.completions
        .create({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], temperature: 'hot' } as any)
        .catch((e) => e)
      expect(wrong.error).toMatchObject({ type: 'invalid_request_error', param: 'temperature', code: 'invalid_value' })
    },
    T,
  )

  test(
    'validation: BadRequestError (400) whose param names the field',
    async () => {
      const error = await openai.chat.completions.create({ model: 'llama3.2' } as any).catch((e) => e)
      expect(error).toBeInstanceOf(OpenAI.BadRequestError)
      expect(error.message).toContain('messages: is required')
      expect(error.param).toBe('messages')
      const image = await openai.chat.completions
        .create({
          model: 'llama3.2',
          messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x/y.png' } }] }],
        })
        .catch((e) => e)
      expect(image.status).toBe(400)
      expect(image.message).toContain('messages.0.content.0.image_url')
    },
    T,
  )

  test(
    'a backend 500 is a 502 (APIError) with the backend’s message',
    async () => {
      fake().failNext(1, 500, 'out of memory')
      const error = await openai.embeddings.create({ model: 'nomic-embed-text', input: 'boom' }).catch((e) => e)
      expect(error).toBeInstanceOf(OpenAI.APIError)
      expect(error.status).toBe(502)
      expect(error.message).toContain('out of memory')
    },
    T,
  )

  test(
    'abandoning a stream cancels the upstream call and frees the slot',
    async () => {
      fake().set({ hang: 'after-first-chunk' })
      try {
        const stream = await openai.chat.completions.create({
          model: 'llama3.2',
          messages: [{ role: 'user', content: 'endless words here' }],
          stream: true,
        })
        const iterator = stream[Symbol.asyncIterator]()
        const first = await iterator.next()
        expect(first.value.choices[0].delta.content).toBe('endless')
        expect(inflight()).toBe(1)
        stream.controller.abort()
        await iterator.next().catch(() => undefined)
        await fake().until(() => fake().calls.some((c) => c.body?.messages?.[0]?.content === 'endless words here' && c.aborted), 10_000)
        await waitFor(() => inflight() === 0)
      } finally {
        fake().set({ hang: false })
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
