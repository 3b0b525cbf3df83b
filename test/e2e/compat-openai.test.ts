/**
 * The official `openai` npm client pointed at a running `orch serve` (baseURL `<url>/v1`) in front of a
 * fake Ollama: chat completions and completions (plain and streamed), embeddings, models, parameter
 * conversion, errors as the client's error classes, and a stream the client abandons cancelling upstream.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import OpenAI from 'openai'
import { fakeEmbedding } from '../helpers/fake-ollama.ts'
import { startTestServe, type TestServe } from '../helpers/serve.ts'

const T = 30_000
let t: TestServe
let openai: OpenAI

beforeAll(async () => {
  t = await startTestServe()
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
