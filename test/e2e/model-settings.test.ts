/**
 * Per-model settings (`models.<provider>.<model>.temperature` and `.context`) through a real `orch serve`
 * in front of a fake Ollama and a fake OpenAI-compatible server, which record the bodies they receive: the
 * defaults fill what a request leaves unset, on the backends of their provider only; a request's own
 * values win; `llama3.2` settings apply to `llama3.2:latest`; the response cache sees the options in effect.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { type FakeServer, startFakeOpenAI } from '../helpers/fake-openai.ts'
import { startTestServe, type TestServe } from '../helpers/serve.ts'

const T = 30_000
const post = (t: TestServe, path: string, body: unknown) =>
  t.fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
const chat = (model: string, content: string, options?: Record<string, unknown>) => ({
  model,
  stream: false,
  messages: [{ role: 'user', content }],
  ...(options ? { options } : {}),
})

/** The message of a chat answer (`stream: false`). */
const content = async (response: Response) => ((await response.json()) as { message: { content: string } }).message.content

/** The body of the last model call the fake received at `path`. */
function lastBody(fake: FakeServer, path: string): any {
  const call = fake.calls.filter((c) => c.path === path).at(-1)
  expect(call).toBeDefined()
  return call?.body
}

describe('per-model defaults reach the backends', () => {
  let t: TestServe
  let compat: FakeServer

  beforeAll(async () => {
    compat = await startFakeOpenAI({ models: ['qwen2.5-7b-instruct'] })
    t = await startTestServe({
      fakes: [{ models: ['llama3.2', 'nomic-embed-text'] }],
      tweak: (c) => {
        c.backends[0] = { ...(c.backends[0] as (typeof c.backends)[number]), models: ['llama3.2', 'nomic-embed-text'] }
        c.backends.push({ name: 'compat', type: 'openai', url: compat.url, models: ['qwen2.5-7b-instruct'], concurrency: 4 })
        c.models = {
          ollama: {
            'llama3.2': { temperature: 0.3, context: 4096, parallel: true },
            'nomic-embed-text': { context: 2048, temperature: 1.2, parallel: true },
            // The Ollama entry of a model only the OpenAI-compatible backend serves: never applied to it.
            'qwen2.5-7b-instruct': { temperature: 1.5, context: 512, parallel: true },
          },
          openai: { 'qwen2.5-7b-instruct': { temperature: 0.25, context: 32768, parallel: true } },
        }
      },
    })
  }, T)
  afterAll(async () => {
    await t?.stop()
    await compat?.stop()
  })

  test(
    'Ollama API without options: the backend gets options.temperature and options.num_ctx from the config',
    async () => {
      const response = await post(t, '/api/chat', chat('llama3.2', 'hello there'))
      expect(response.status).toBe(200)
      expect(await content(response)).toBe('hello there')
      expect(lastBody(t.fakes[0] as FakeServer, '/api/chat').options).toEqual({ temperature: 0.3, num_ctx: 4096 })

      const generated = await post(t, '/api/generate', { model: 'llama3.2', prompt: 'why blue', stream: false, options: { top_k: 5 } })
      expect(generated.status).toBe(200)
      await generated.json()
      expect(lastBody(t.fakes[0] as FakeServer, '/api/generate').options).toEqual({ top_k: 5, temperature: 0.3, num_ctx: 4096 })
    },
    T,
  )

  test(
    'settings for llama3.2 apply to requests for llama3.2:latest',
    async () => {
      const response = await post(t, '/api/chat', chat('llama3.2:latest', 'tagged'))
      expect(response.status).toBe(200)
      await response.json()
      const body = lastBody(t.fakes[0] as FakeServer, '/api/chat')
      expect(body.model).toBe('llama3.2:latest')
      expect(body.options).toEqual({ temperature: 0.3, num_ctx: 4096 })
    },
    T,
  )

  test(
    "a request's own temperature and num_ctx win over the defaults",
    async () => {
      const response = await post(t, '/api/chat', chat('llama3.2', 'mine', { temperature: 0.9, num_ctx: 1024 }))
      expect(response.status).toBe(200)
      await response.json()
      expect(lastBody(t.fakes[0] as FakeServer, '/api/chat').options).toEqual({ temperature: 0.9, num_ctx: 1024 })

      const openai = await post(t, '/v1/chat/completions', {
        model: 'llama3.2',
        temperature: 0,
        messages: [{ role: 'user', content: 'zero' }],
      })
      expect(openai.status).toBe(200)
      await openai.json()
      expect(lastBody(t.fakes[0] as FakeServer, '/api/chat').options).toMatchObject({ temperature: 0, num_ctx: 4096 })
    },
    T,
  )

  test(
    'embeddings on Ollama get num_ctx from context, and no temperature',
    async () => {
      const response = await post(t, '/api/embed', { model: 'nomic-embed-text', input: 'a vector please' })
      expect(response.status).toBe(200)
      await response.json()
      expect(lastBody(t.fakes[0] as FakeServer, '/api/embed').options).toEqual({ num_ctx: 2048 })
    },
    T,
  )

  test(
    'an OpenAI-compatible backend gets `temperature` from models.openai, nothing for context, never the Ollama entry',
    async () => {
      const viaOpenAI = await post(t, '/v1/chat/completions', { model: 'qwen2.5-7b-instruct', messages: [{ role: 'user', content: 'hi' }] })
      expect(viaOpenAI.status).toBe(200)
      await viaOpenAI.json()
      const body = lastBody(compat, '/v1/chat/completions')
      expect(body.temperature).toBe(0.25)
      expect(Object.keys(body).filter((k) => /ctx|context/.test(k))).toEqual([])

      // The same through the Ollama API, and the request's own value still wins.
      const viaOllama = await post(t, '/api/chat', chat('qwen2.5-7b-instruct', 'hot', { temperature: 0.8 }))
      expect(viaOllama.status).toBe(200)
      await viaOllama.json()
      expect(lastBody(compat, '/v1/chat/completions').temperature).toBe(0.8)
    },
    T,
  )

  test(
    'a durable task without options gets the defaults too',
    async () => {
      const submitted = await post(t, '/queue/submit', { type: 'generate', model: 'llama3.2', payload: { prompt: 'task prompt' } })
      expect(submitted.status).toBe(202)
      const { id } = (await submitted.json()) as { id: string }
      const waited = (await (await t.fetch(`/tasks/${id}/wait?timeout=20s`)).json()) as { finished: boolean; task: { state: string } }
      expect(waited.finished).toBe(true)
      expect(waited.task.state).toBe('done')
      const call = (t.fakes[0] as FakeServer).calls.filter((c) => c.path === '/api/generate' && c.body.prompt === 'task prompt').at(-1)
      expect(call?.body.options).toEqual({ temperature: 0.3, num_ctx: 4096 })
    },
    T,
  )
})

describe('the response cache sees the options in effect', () => {
  let t: TestServe
  let compat: FakeServer

  beforeAll(async () => {
    compat = await startFakeOpenAI({ models: ['shared-model'] })
    t = await startTestServe({
      fakes: [{ models: ['llama3.2', 'qwen3:8b', 'shared-model'], loaded: ['shared-model'] }],
      tweak: (c) => {
        c.infrastructure_system.llm_orchestration.caching.mode = 'deterministic'
        c.backends.push({ name: 'compat', type: 'openai', url: compat.url, models: ['shared-model'], concurrency: 4 })
        c.models = {
          ollama: {
            'qwen3:8b': { temperature: 0, parallel: true },
            'llama3.2': { temperature: 0.7, parallel: true },
            'shared-model': { temperature: 0, parallel: true },
          },
          openai: { 'shared-model': { temperature: 0.6, parallel: true } },
        }
      },
    })
  }, T)
  afterAll(async () => {
    await t?.stop()
    await compat?.stop()
  })

  const chatCalls = (fake: FakeServer, model: string) => fake.calls.filter((c) => c.path === '/api/chat' && c.model === model).length

  test(
    'deterministic mode caches a request without temperature whose configured default is 0; an explicit 0 shares the entry',
    async () => {
      const fake = t.fakes[0] as FakeServer
      for (let i = 0; i < 2; i++) {
        const response = await post(t, '/api/chat', chat('qwen3:8b', 'cache me'))
        expect(response.status).toBe(200)
        expect(await content(response)).toBe('cache me')
      }
      expect(chatCalls(fake, 'qwen3:8b')).toBe(1)
      const explicit = await post(t, '/api/chat', chat('qwen3:8b', 'cache me', { temperature: 0 }))
      expect(await content(explicit)).toBe('cache me')
      expect(chatCalls(fake, 'qwen3:8b')).toBe(1)
      expect(lastBody(fake, '/api/chat').options).toEqual({ temperature: 0 })
    },
    T,
  )

  test(
    'a default above 0 keeps a request without temperature out of the deterministic cache',
    async () => {
      const fake = t.fakes[0] as FakeServer
      for (let i = 0; i < 2; i++) await (await post(t, '/api/chat', chat('llama3.2', 'not cached'))).json()
      expect(chatCalls(fake, 'llama3.2')).toBe(2)
    },
    T,
  )

  test(
    'backends of both types with different defaults: each is sent its own, no entry is read for them, the answer is stored as sent',
    async () => {
      const fake = t.fakes[0] as FakeServer
      const ollamaCalls = () => fake.calls.filter((c) => c.path === '/api/chat' && c.model === 'shared-model')
      const openaiCalls = () => compat.calls.filter((c) => c.path === '/v1/chat/completions')
      // Both have the model loaded and no call in flight: the router takes the first, the Ollama one, whose
      // default (0) would make the request cacheable; the OpenAI-compatible one's (0.6) would not.
      for (let i = 0; i < 3; i++) await (await post(t, '/api/chat', chat('shared-model', 'route decides'))).json()
      expect(ollamaCalls().length).toBe(3)
      for (const call of ollamaCalls()) expect(call.body.options).toEqual({ temperature: 0 })
      expect(openaiCalls()).toHaveLength(0)

      // With its own temperature the request is the same on either backend: the entry stored under what the
      // Ollama backend was sent answers it.
      const explicit = await post(t, '/api/chat', chat('shared-model', 'route decides', { temperature: 0 }))
      expect(await content(explicit)).toBe('route decides')
      expect(ollamaCalls().length + openaiCalls().length).toBe(3)

      // The OpenAI-compatible backend, when it is the one picked (the Ollama one marked down), is sent its own.
      const { scheduler } = t.server.deps.engine
      scheduler.update('fake0', { healthy: false })
      try {
        const response = await post(t, '/api/chat', chat('shared-model', 'the other one'))
        expect(response.status).toBe(200)
        await response.json()
      } finally {
        scheduler.update('fake0', { healthy: true })
      }
      expect(openaiCalls()).toHaveLength(1)
      expect(lastBody(compat, '/v1/chat/completions').temperature).toBe(0.6)
    },
    T,
  )
})
