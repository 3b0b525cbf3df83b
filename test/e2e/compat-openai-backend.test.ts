/**
 * The official `openai` client against `orch serve` in front of OpenAI-compatible backends (fake-openai.ts):
 * one that honours `dimensions` as OpenAI does, one that ignores it (as llama.cpp's server does). Embeddings
 * get the vectors the backend cut, or orch cuts them; usage is the backend's; a backend's refusal keeps its
 * OpenAI code; the Responses API works over such a backend too.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import OpenAI from 'openai'
import { type FakeServer, fakeEmbedding, startFakeOpenAI } from '../helpers/fake-openai.ts'
import { startTestServe, type TestServe } from '../helpers/serve.ts'

const T = 30_000
let t: TestServe
let vllm: FakeServer
let llamacpp: FakeServer
let openai: OpenAI

beforeAll(async () => {
  vllm = await startFakeOpenAI({ models: ['qwen2.5-7b-instruct', 'bge-small'] })
  llamacpp = await startFakeOpenAI({ models: ['mini-embed'], dimensions: false })
  t = await startTestServe({
    tweak: (c) => {
      c.backends = [
        { name: 'vllm', type: 'openai', url: vllm.url, concurrency: 4 },
        { name: 'llamacpp', type: 'openai', url: llamacpp.url, concurrency: 4 },
      ]
    },
  })
  openai = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: 'any', maxRetries: 0 })
})
afterAll(async () => {
  await t?.stop()
  await vllm?.stop()
  await llamacpp?.stop()
})

const embedCalls = (fake: FakeServer) => fake.calls.filter((c) => c.path === '/v1/embeddings')
const unit = (v: number[]) => v.map((x) => x / Math.hypot(...v))

describe('openai client → orch → OpenAI-compatible backend: embeddings', () => {
  test(
    'dimensions pass through; the backend’s cut vectors come back as they are; usage is the backend’s',
    async () => {
      const answer = await openai.embeddings.create({
        model: 'bge-small',
        input: ['north wind', 'south'],
        dimensions: 3,
        encoding_format: 'float',
      })
      const call = embedCalls(vllm).at(-1)
      expect(call?.body).toEqual({ model: 'bge-small', input: ['north wind', 'south'], dimensions: 3 })
      expect(answer.data.map((d) => d.embedding)).toEqual(['north wind', 'south'].map((text) => unit(fakeEmbedding(text, 8).slice(0, 3))))
      // The fake's usage: one token per word.
      expect(answer.usage).toEqual({ prompt_tokens: 3, total_tokens: 3 })
    },
    T,
  )

  test(
    'more dimensions than the model has: the backend’s 400 reaches the client with its code',
    async () => {
      const error = await openai.embeddings.create({ model: 'bge-small', input: 'east', dimensions: 64 }).catch((e) => e)
      expect(error).toBeInstanceOf(OpenAI.BadRequestError)
      expect(error.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_value', orch_code: 'E_BACKEND_HTTP' })
      expect(error.message).toContain('does not support dimensions above 8')
    },
    T,
  )

  test(
    'a backend that ignores dimensions: orch cuts and re-normalises, or refuses more than the model has',
    async () => {
      const answer = await openai.embeddings.create({ model: 'mini-embed', input: 'west', dimensions: 2, encoding_format: 'float' })
      expect(embedCalls(llamacpp).at(-1)?.body.dimensions).toBe(2)
      const expected = unit(fakeEmbedding('west', 8).slice(0, 2))
      answer.data[0]!.embedding.forEach((x, i) => {
        expect(x).toBeCloseTo(expected[i]!, 12)
      })
      expect(answer.usage.prompt_tokens).toBe(1)
      const error = await openai.embeddings.create({ model: 'mini-embed', input: 'west wind', dimensions: 9 }).catch((e) => e)
      expect(error).toBeInstanceOf(OpenAI.BadRequestError)
      expect(error.error).toMatchObject({ param: 'dimensions', code: 'invalid_value', orch_code: 'E_VALIDATION' })
    },
    T,
  )
})

describe('openai client → orch → OpenAI-compatible backend: responses', () => {
  test(
    'responses.create, plain and streamed, over a chat-completions backend',
    async () => {
      const plain = await openai.responses.create({ model: 'qwen2.5-7b-instruct', instructions: 'echo', input: 'hello over vllm' })
      expect(plain.output_text).toBe('hello over vllm')
      expect(plain.usage).toMatchObject({ input_tokens: 4, output_tokens: 3, total_tokens: 7 })
      const sent = vllm.calls.filter((c) => c.path === '/v1/chat/completions').at(-1)?.body
      expect(sent.messages).toEqual([
        { role: 'system', content: 'echo' },
        { role: 'user', content: 'hello over vllm' },
      ])
      const final = await openai.responses.stream({ model: 'qwen2.5-7b-instruct', input: 'streamed over vllm' }).finalResponse()
      expect(final.output_text).toBe('streamed over vllm')
    },
    T,
  )
})
