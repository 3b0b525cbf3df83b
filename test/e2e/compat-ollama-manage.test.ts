/**
 * Ollama's model management through a real `orch serve`, with the official `ollama` client: show, pull
 * (progress streamed to the client), create, copy, delete, version and the root probe; where each call
 * goes (config `models` lists, pool workers), what is refused for OpenAI-compatible backends, and that the
 * calls need the token and cannot be made from another site; the backend's pull is bounded by idle_ms.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { Ollama } from 'ollama'
import { createBackend } from '../../src/backends/create.ts'
import { BackendError, type ManagedBackend } from '../../src/backends/types.ts'
import { compareVersions, FALLBACK_OLLAMA_VERSION, lowestVersion } from '../../src/server/routes/ollama-manage.ts'
import { type FakeOllamaOptions, type FakeServer, startFakeOllama } from '../helpers/fake-ollama.ts'
import { startFakeOpenAI } from '../helpers/fake-openai.ts'
import { type Config, startTestServe, type TestServe } from '../helpers/serve.ts'

const T = 30_000

interface Setup {
  t: TestServe
  ollama: Ollama
  fakes: Record<string, FakeServer>
  stop(): Promise<void>
}

type Spec = { kind: 'ollama'; fake?: FakeOllamaOptions; models?: string[] } | { kind: 'openai'; models: string[] }

/** orch serve in front of the named fakes; `models` is the backend's `models` list in the config. */
async function setup(specs: Record<string, Spec>, tweak: (c: Config) => void = () => {}): Promise<Setup> {
  const fakes: Record<string, FakeServer> = {}
  for (const [name, spec] of Object.entries(specs)) {
    fakes[name] = spec.kind === 'ollama' ? await startFakeOllama(spec.fake) : await startFakeOpenAI({ models: spec.models })
  }
  const t = await startTestServe({
    fakes: [],
    tweak: (c) => {
      c.backends = Object.entries(specs).map(([name, spec]) => ({
        name,
        type: spec.kind,
        url: (fakes[name] as FakeServer).url,
        concurrency: 4,
        ...(spec.kind === 'ollama' && spec.models ? { models: spec.models } : {}),
      }))
      c.runtime = { ollama: { concurrency: 64 }, openai: { concurrency: 64 } }
      tweak(c)
    },
  })
  const headers: Record<string, string> = t.config.server.token ? { authorization: `Bearer ${t.config.server.token}` } : {}
  return {
    t,
    ollama: new Ollama({ host: t.url, headers }),
    fakes,
    async stop() {
      await t.stop()
      for (const fake of Object.values(fakes)) await fake.stop()
    },
  }
}

const callsTo = (fake: FakeServer | undefined, path: string) => (fake?.calls ?? []).filter((c) => c.path === path)
const post = (body: unknown, headers: Record<string, string> = {}) => ({ method: 'POST', body: JSON.stringify(body), headers })
const errorOf = (promise: Promise<unknown>) => promise.then(() => undefined).catch((e: { status_code?: number; message: string }) => e)

describe('two Ollama backends', () => {
  let s: Setup
  beforeAll(async () => {
    s = await setup({
      a: { kind: 'ollama', fake: { models: ['llama3.2', 'nomic-embed-text'], version: '0.12.3', tokenDelayMs: 20 } },
      b: { kind: 'ollama', fake: { models: ['llama3.2', 'qwen3:8b'], version: '0.9.6' } },
    })
  })
  afterAll(() => s?.stop())

  test(
    'show forwards to an Ollama backend serving the model: its details, model_info, capabilities as it sent them',
    async () => {
      const shown = await s.ollama.show({ model: 'llama3.2' })
      expect(shown.details).toEqual({
        parent_model: '',
        format: 'gguf',
        family: 'llama',
        families: ['llama'],
        parameter_size: '3.2B',
        quantization_level: 'Q4_K_M',
      })
      expect(shown.model_info).toMatchObject({ 'general.architecture': 'llama', 'llama.context_length': 131_072 })
      expect(shown.capabilities).toEqual(['completion'])
      expect(shown.license).toContain('LICENSE')
      expect(shown.modelfile).toContain('FROM llama3.2:latest')
      expect(shown.template).toBe('{{ .Prompt }}')
      // The older `name` field works too, as it does on Ollama.
      const legacy = await s.t.fetch('/api/show', post({ name: 'qwen3:8b' }))
      expect(legacy.status).toBe(200)
      expect(((await legacy.json()) as { details: { family: string } }).details.family).toBe('llama')
    },
    T,
  )

  test(
    'show of a model nobody has: 404 in Ollama’s words',
    async () => {
      const error = await errorOf(s.ollama.show({ model: 'no-such-model' }))
      expect(error?.status_code).toBe(404)
      expect(error?.message).toBe("model 'no-such-model' not found")
      const missing = await s.t.fetch('/api/show', post({}))
      expect(missing.status).toBe(400)
      expect(await missing.json()).toEqual({ error: 'model: a model name is required, got nothing' })
    },
    T,
  )

  test(
    'pull streams the progress to the client while the backends download; every Ollama backend gets the model and it is routable at once',
    async () => {
      const pulls = () => [...callsTo(s.fakes.a, '/api/pull'), ...callsTo(s.fakes.b, '/api/pull')]
      const stream = await s.ollama.pull({ model: 'mistral', stream: true })
      const lines: { status: string; digest?: string; total?: number; completed?: number }[] = []
      let firstWhileRunning: boolean | undefined
      for await (const line of stream) {
        // fake a spaces its lines 20 ms apart: the first one arrives while it is still sending.
        firstWhileRunning ??= callsTo(s.fakes.a, '/api/pull').some((c) => c.endedAt === undefined)
        lines.push(line)
      }
      expect(firstWhileRunning).toBe(true)
      expect(lines[0]).toEqual({ status: 'pulling manifest' })
      expect(lines.at(-1)).toEqual({ status: 'success' })
      expect(lines.filter((l) => l.status === 'success').length).toBe(1)
      expect(lines.filter((l) => l.status === 'pulling manifest').length).toBe(1)
      const layer = lines.filter((l) => l.digest !== undefined)
      expect(layer.length).toBeGreaterThan(0)
      // Both backends pull the same layers: the totals are summed, and end complete.
      const last = layer.filter((l) => l.digest === layer[0]?.digest).at(-1)
      expect(last?.total).toBe(2 * 2_019_393_189)
      expect(last?.completed).toBe(last?.total)
      expect(pulls().map((c) => c.body.name ?? c.body.model)).toEqual(['mistral', 'mistral'])
      // The scheduler knows at once (no health round needed): a chat is routed to it.
      for (const name of ['a', 'b'])
        expect(s.t.server.deps.engine.scheduler.states.get(name)?.discoveredModels?.has('mistral:latest')).toBe(true)
      const answer = await s.ollama.chat({ model: 'mistral', messages: [{ role: 'user', content: 'pulled and ready' }] })
      expect(answer.message.content).toBe('pulled and ready')
      expect((await s.ollama.list()).models.map((m) => m.name)).toContain('mistral:latest')
    },
    T,
  )

  test(
    'a client that leaves mid-pull ends the pull on every backend',
    async () => {
      for (const fake of [s.fakes.a, s.fakes.b]) fake?.set({ tokenDelayMs: 1000 })
      try {
        const stream = await s.ollama.pull({ model: 'abandoned', stream: true })
        const iterator = stream[Symbol.asyncIterator]()
        expect((await iterator.next()).value).toEqual({ status: 'pulling manifest' } as never)
        stream.abort()
        await expect(iterator.next()).rejects.toThrow()
        const pulls = () => [s.fakes.a, s.fakes.b].map((f) => callsTo(f, '/api/pull').find((c) => c.body.name === 'abandoned'))
        await s.fakes.a?.until(() => pulls().every((c) => c?.aborted === true), 5000)
        expect(s.t.server.deps.engine.scheduler.states.get('a')?.discoveredModels?.has('abandoned:latest')).toBe(false)
      } finally {
        s.fakes.a?.set({ tokenDelayMs: 20 })
        s.fakes.b?.set({ tokenDelayMs: 0 })
      }
    },
    T,
  )

  test(
    'pull with stream: false answers one object once done',
    async () => {
      expect(await s.ollama.pull({ model: 'phi3', stream: false })).toEqual({ status: 'success' } as never)
      expect(s.fakes.a?.calls.some((c) => c.path === '/api/pull' && c.body.name === 'phi3' && c.body.stream === true)).toBe(true)
      expect(s.t.server.deps.engine.scheduler.states.get('b')?.discoveredModels?.has('phi3:latest')).toBe(true)
    },
    T,
  )

  test(
    'create from a model goes to the backends that have it, streams its progress, and the new model is routable',
    async () => {
      const stream = await s.ollama.create({ model: 'mario', from: 'qwen3:8b', system: 'You are Mario', stream: true })
      const statuses: string[] = []
      for await (const line of stream) statuses.push(line.status)
      expect(statuses[0]).toBe('reading model metadata')
      expect(statuses.at(-1)).toBe('success')
      expect(callsTo(s.fakes.a, '/api/create')).toEqual([])
      expect(callsTo(s.fakes.b, '/api/create').map((c) => c.body)).toEqual([
        { model: 'mario', from: 'qwen3:8b', system: 'You are Mario', stream: true },
      ])
      const answer = await s.ollama.generate({ model: 'mario', prompt: 'its a me' })
      expect(answer.response).toBe('its a me')
      const error = await errorOf(s.ollama.create({ model: 'luigi', from: 'no-such-base' }))
      expect(error?.status_code).toBe(404)
      expect(error?.message).toBe("model 'no-such-base' not found")
    },
    T,
  )

  test(
    'copy runs where the source is; the copy is routable; an unknown source is 404',
    async () => {
      await s.ollama.copy({ source: 'nomic-embed-text', destination: 'embedder' })
      expect(callsTo(s.fakes.a, '/api/copy').map((c) => c.body)).toEqual([{ source: 'nomic-embed-text', destination: 'embedder' }])
      expect(callsTo(s.fakes.b, '/api/copy')).toEqual([])
      const { embeddings } = await s.ollama.embed({ model: 'embedder', input: 'copied' })
      expect(embeddings.length).toBe(1)
      const error = await errorOf(s.ollama.copy({ source: 'ghost', destination: 'ghost2' }))
      expect(error?.status_code).toBe(404)
      expect(error?.message).toBe('model "ghost" not found')
    },
    T,
  )

  test(
    'delete removes the model from the backends that have it, and routing forgets it',
    async () => {
      await s.ollama.delete({ model: 'qwen3:8b' })
      expect(callsTo(s.fakes.b, '/api/delete').map((c) => c.method)).toEqual(['DELETE'])
      expect(callsTo(s.fakes.a, '/api/delete')).toEqual([])
      expect((await s.ollama.list()).models.map((m) => m.name)).not.toContain('qwen3:8b')
      const chat = await errorOf(s.ollama.chat({ model: 'qwen3:8b', messages: [{ role: 'user', content: 'hi' }] }))
      expect(chat?.status_code).toBe(404)
      const again = await errorOf(s.ollama.delete({ model: 'qwen3:8b' }))
      expect(again?.status_code).toBe(404)
      expect(again?.message).toBe("model 'qwen3:8b' not found")
    },
    T,
  )

  test(
    'a pull the library cannot serve ends with the backend’s error: in-band when streamed, a status when not',
    async () => {
      const c = await setup({ x: { kind: 'ollama', fake: { library: ['llama3.2'] } } })
      try {
        const stream = await c.ollama.pull({ model: 'not-in-library', stream: true })
        const seen: string[] = []
        const error = await (async () => {
          for await (const line of stream) seen.push(line.status)
        })().catch((e: Error) => e)
        expect(seen).toEqual(['pulling manifest'])
        expect((error as Error).message).toContain('pull model manifest: file does not exist')
        const whole = await errorOf(c.ollama.pull({ model: 'not-in-library' }))
        expect(whole?.status_code).toBe(502)
        expect(whole?.message).toContain('file does not exist')
      } finally {
        await c.stop()
      }
    },
    T,
  )

  test(
    'version: the lowest of the Ollama backends’ versions, and orch’s own beside it',
    async () => {
      expect(await s.ollama.version()).toEqual({ version: '0.9.6', orch_version: '0.0.0-test' } as never)
      const head = await s.t.fetch('/api/version', { method: 'HEAD' })
      expect(head.status).toBe(200)
    },
    T,
  )

  test(
    'the root answers as Ollama’s does, GET and HEAD',
    async () => {
      const get = await fetch(`${s.t.url}/`)
      expect(get.status).toBe(200)
      expect(get.headers.get('content-type')).toBe('text/plain; charset=utf-8')
      expect(await get.text()).toBe('Ollama is running')
      const head = await fetch(`${s.t.url}/`, { method: 'HEAD' })
      expect(head.status).toBe(200)
      expect(head.headers.get('content-type')).toBe('text/plain; charset=utf-8')
      expect(await head.text()).toBe('')
    },
    T,
  )
})

describe('which backends a pull goes to', () => {
  let s: Setup
  beforeAll(async () => {
    s = await setup({
      open: { kind: 'ollama', fake: { models: ['llama3.2'] } },
      listed: { kind: 'ollama', fake: { models: ['llama3.2'] }, models: ['llama3.2', 'phi3'] },
    })
  })
  afterAll(() => s?.stop())

  test(
    'a model a backend’s config lists goes only there; any other goes to the backends without a list',
    async () => {
      await s.ollama.pull({ model: 'phi3' })
      expect(callsTo(s.fakes.listed, '/api/pull').map((c) => c.body.name)).toEqual(['phi3'])
      expect(callsTo(s.fakes.open, '/api/pull')).toEqual([])
      await s.ollama.pull({ model: 'gemma3' })
      expect(callsTo(s.fakes.open, '/api/pull').map((c) => c.body.name)).toEqual(['gemma3'])
      expect(callsTo(s.fakes.listed, '/api/pull').length).toBe(1)
    },
    T,
  )

  test(
    'a pool worker is a backend like the others: its pool’s models bring the pull to it',
    async () => {
      const worker = await startFakeOllama({ models: [] })
      try {
        const { scheduler } = s.t.server.deps.engine
        const backend = createBackend({ name: 'gpu/w1', type: 'ollama', url: worker.url, concurrency: 1 }, s.t.config.backend_timeouts)
        scheduler.addBackend({ backend, concurrency: 1, configuredModels: ['deepseek-r1:7b'] })
        await s.ollama.pull({ model: 'deepseek-r1:7b' })
        expect(callsTo(worker, '/api/pull').map((c) => c.body.name)).toEqual(['deepseek-r1:7b'])
        expect(scheduler.states.get('gpu/w1')?.discoveredModels?.has('deepseek-r1:7b')).toBe(true)
        scheduler.removeBackend('gpu/w1')
      } finally {
        await worker.stop()
      }
    },
    T,
  )

  test(
    'every Ollama backend restricted to other models: 400 saying which, and how to allow it',
    async () => {
      const c = await setup({ only: { kind: 'ollama', fake: { models: ['llama3.2'] }, models: ['llama3.2'] } })
      try {
        const error = await errorOf(c.ollama.pull({ model: 'gemma3' }))
        expect(error?.status_code).toBe(400)
        expect(error?.message).toContain('none lists "gemma3"')
        expect(error?.message).toContain('only (llama3.2:latest)')
        expect(callsTo(c.fakes.only, '/api/pull')).toEqual([])
      } finally {
        await c.stop()
      }
    },
    T,
  )
})

describe('a model only on an OpenAI-compatible backend', () => {
  let s: Setup
  beforeAll(async () => {
    s = await setup({
      local: { kind: 'ollama', fake: { models: ['llama3.2'], version: '0.11.4' } },
      vllm: { kind: 'openai', models: ['qwen2.5-7b-instruct'] },
    })
  })
  afterAll(() => s?.stop())

  test(
    'show is made up in Ollama’s shape from what is known',
    async () => {
      const shown = await s.ollama.show({ model: 'qwen2.5-7b-instruct' })
      expect(shown).toEqual({
        license: '',
        modelfile: expect.stringContaining('OpenAI-compatible backend vllm'),
        parameters: '',
        template: '',
        details: { parent_model: '', format: '', family: '', families: null, parameter_size: '', quantization_level: '' },
        model_info: {},
        capabilities: ['completion'],
        // The fake's `created` (2025-01-01) from /v1/models.
        modified_at: '2025-01-01T00:00:00.000Z',
      } as never)
      // A model on the Ollama backend is still forwarded there.
      expect((await s.ollama.show({ model: 'llama3.2' })).details.format).toBe('gguf')
    },
    T,
  )

  test(
    'show lists the model’s configured settings as Ollama writes parameters',
    async () => {
      const configured = await setup({ vllm: { kind: 'openai', models: ['qwen2.5-7b-instruct'] } }, (c) => {
        c.models = { openai: { 'qwen2.5-7b-instruct': { context: 32768, temperature: 0.2, parallel: true } } }
      })
      try {
        const shown = await configured.ollama.show({ model: 'qwen2.5-7b-instruct' })
        expect(shown.parameters).toBe('num_ctx 32768\ntemperature 0.2')
      } finally {
        await configured.stop()
      }
    },
    T,
  )

  test(
    'pull, copy and delete are refused with 501, naming the OpenAI-compatible backend; nothing reaches the Ollama one',
    async () => {
      // One at a time: a rejection nobody awaits yet would count as unhandled.
      for (const attempt of [
        () => s.ollama.pull({ model: 'qwen2.5-7b-instruct' }),
        () => s.ollama.copy({ source: 'qwen2.5-7b-instruct', destination: 'q2' }),
        () => s.ollama.delete({ model: 'qwen2.5-7b-instruct' }),
        () => s.ollama.create({ model: 'q3', from: 'qwen2.5-7b-instruct' }),
      ]) {
        const error = await errorOf(attempt())
        expect(error?.status_code).toBe(501)
        expect(error?.message).toContain('"qwen2.5-7b-instruct" is served only by OpenAI-compatible backends (vllm)')
        expect(error?.message).toContain('manage them on those servers directly')
      }
      const local = s.fakes.local?.calls.filter((c) => ['/api/pull', '/api/copy', '/api/delete', '/api/create'].includes(c.path))
      expect(local).toEqual([])
      // A model for Ollama still pulls there.
      await s.ollama.pull({ model: 'llama3.2' })
      expect(callsTo(s.fakes.local, '/api/pull').length).toBe(1)
    },
    T,
  )

  test(
    'version comes from the Ollama backend alone',
    async () => {
      expect(await s.ollama.version()).toEqual({ version: '0.11.4', orch_version: '0.0.0-test' } as never)
    },
    T,
  )

  test(
    'with OpenAI-compatible backends only: version falls back to a fixed Ollama version, pull says why it cannot',
    async () => {
      const c = await setup({ vllm: { kind: 'openai', models: ['qwen2.5-7b-instruct'] } })
      try {
        expect(await c.ollama.version()).toEqual({ version: FALLBACK_OLLAMA_VERSION, orch_version: '0.0.0-test' } as never)
        const error = await errorOf(c.ollama.pull({ model: 'llama3.2' }))
        expect(error?.status_code).toBe(501)
        expect(error?.message).toContain('the backends (vllm) are OpenAI-compatible')
      } finally {
        await c.stop()
      }
    },
    T,
  )
})

describe('management calls are guarded like every other call', () => {
  let s: Setup
  const token = 'manage-token-0123456789'
  beforeAll(async () => {
    s = await setup({ a: { kind: 'ollama', fake: { models: ['llama3.2'] } } }, (c) => {
      c.server.token = token
    })
  })
  afterAll(() => s?.stop())

  test(
    'without the token: 401, and nothing reaches the backend; with it, the call works',
    async () => {
      const bare = new Ollama({ host: s.t.url })
      for (const attempt of [
        () => bare.pull({ model: 'phi3' }),
        () => bare.delete({ model: 'llama3.2' }),
        () => bare.show({ model: 'llama3.2' }),
      ]) {
        expect((await errorOf(attempt()))?.status_code).toBe(401)
      }
      expect(s.fakes.a?.calls.filter((c) => c.path !== '/api/version' && c.path !== '/api/tags' && c.path !== '/api/ps')).toEqual([])
      expect(await s.ollama.pull({ model: 'phi3' })).toEqual({ status: 'success' } as never)
    },
    T,
  )

  test(
    'a page on another site cannot pull, create, copy or delete, token or not',
    async () => {
      const auth = { authorization: `Bearer ${token}` }
      const requests: [string, string, unknown][] = [
        ['POST', '/api/pull', { model: 'gemma3' }],
        ['POST', '/api/create', { model: 'evil', from: 'llama3.2' }],
        ['POST', '/api/copy', { source: 'llama3.2', destination: 'evil' }],
        ['DELETE', '/api/delete', { model: 'llama3.2' }],
      ]
      const browsers: Record<string, string>[] = [
        { origin: 'https://evil.example' },
        { 'sec-fetch-site': 'cross-site' },
        { origin: 'null' },
      ]
      for (const [method, path, body] of requests) {
        for (const browser of browsers) {
          const res = await fetch(`${s.t.url}${path}`, { method, body: JSON.stringify(body), headers: { ...auth, ...browser } })
          expect(res.status).toBe(403)
          expect(((await res.json()) as { error: string }).error).toBeString()
        }
      }
      const changed = s.fakes.a?.calls.filter((c) => ['/api/pull', '/api/create', '/api/copy', '/api/delete'].includes(c.path))
      expect(changed?.map((c) => c.body?.name ?? c.body?.model)).toEqual(['phi3'])
      expect((await s.ollama.list()).models.map((m) => m.name)).toContain('llama3.2:latest')
    },
    T,
  )
})

describe('the Ollama backend’s management calls', () => {
  test(
    'a pull is bounded by idle_ms between lines, not by total_ms',
    async () => {
      const fake = await startFakeOllama({ models: [], tokenDelayMs: 40 })
      try {
        const pull = async (idle_ms: number) => {
          const timeouts = { connect_ms: 2000, first_token_ms: 2000, idle_ms, total_ms: 150 }
          const backend = createBackend({ name: 'slow', type: 'ollama', url: fake.url, concurrency: 1 }, timeouts) as ManagedBackend
          const statuses: string[] = []
          for await (const line of backend.manage.pull({ model: 'llama3.2' })) statuses.push(line.status)
          return statuses
        }
        // 12 lines 40 ms apart: well past total_ms, each within idle_ms.
        const started = performance.now()
        expect((await pull(1000)).at(-1)).toBe('success')
        expect(performance.now() - started).toBeGreaterThan(300)
        const error = (await pull(10).catch((e) => e)) as BackendError
        expect(error).toBeInstanceOf(BackendError)
        expect(error.kind).toBe('timeout')
        expect(error.message).toContain('idle_ms')
      } finally {
        await fake.stop()
      }
    },
    T,
  )
})

describe('version order', () => {
  test('numbers compare as numbers, a pre-release comes before its release', () => {
    expect(lowestVersion(['0.12.3', '0.9.6', '0.10.0'])).toBe('0.9.6')
    expect(lowestVersion(['0.13.0', '0.13.0-rc1'])).toBe('0.13.0-rc1')
    expect(lowestVersion(['1.0.0', 'v0.20.1'])).toBe('v0.20.1')
    expect(lowestVersion([])).toBeUndefined()
    expect(compareVersions('0.6.10', '0.6.9')).toBeGreaterThan(0)
    expect(compareVersions('0.6', '0.6.0')).toBe(0)
  })
})
