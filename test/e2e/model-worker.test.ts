/**
 * `orch model-worker` as a process, on the tiny GGUF model, with real node-llama-cpp inference: Ollama's
 * endpoints and shapes, token counts, determinism at temperature 0, streaming, parallel sequences, a
 * client that goes away, refusals of bad input, and the CLI's own errors.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { runCli, tempDir } from '../helpers/cli.ts'
import { type ModelWorker, startModelWorker, tinyModelPath } from '../helpers/tiny-model.ts'

const T = 60_000
const MODEL = 'tiny'
const user = (content: string) => [{ role: 'user', content }]

const post = (w: ModelWorker, path: string, body: unknown, init: RequestInit = {}) =>
  fetch(`${w.url}${path}`, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), ...init })

async function ndjson(res: Response): Promise<any[]> {
  const text = await res.text()
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l))
}

const health = async (w: ModelWorker) => (await fetch(`${w.url}/health`)).json() as Promise<any>

describe('one worker, parallel 2', () => {
  let w: ModelWorker
  beforeAll(async () => {
    w = await startModelWorker(['--parallel', '2'])
  }, T)
  afterAll(() => w?.stop())

  test('health, version, tags, ps and show describe the model', async () => {
    const h = await health(w)
    expect(h).toMatchObject({ status: 'ok', model: MODEL, backend: 'cpu', parallel: 2, busy: 0, context_per_request: 2048 })
    expect(((await (await fetch(`${w.url}/api/version`)).json()) as any).version).toMatch(/^\d+\.\d+\.\d+/)
    const tags = (await (await fetch(`${w.url}/api/tags`)).json()) as any
    expect(tags.models).toHaveLength(1)
    const card = tags.models[0]
    expect(card).toMatchObject({
      name: MODEL,
      model: MODEL,
      details: { format: 'gguf', family: 'llama', families: ['llama'], parameter_size: '116K', quantization_level: 'F32' },
    })
    expect(card.size).toBeGreaterThan(400_000)
    expect(card.digest).toMatch(/^[0-9a-f]{64}$/)
    const ps = (await (await fetch(`${w.url}/api/ps`)).json()) as any
    // The loaded list is the tags list plus what loading adds.
    expect(ps.models[0]).toMatchObject({ ...card, size_vram: 0, context_length: 2048 })
    const show = (await (await post(w, '/api/show', { model: MODEL })).json()) as any
    expect(show.details).toEqual(card.details)
    expect(show.model_info).toMatchObject({ 'general.architecture': 'llama', 'llama.block_count': 2, 'llama.embedding_length': 64 })
  })

  test(
    'chat: num_predict tokens exactly, the counts and durations, the same answer twice at temperature 0',
    async () => {
      const body = { model: MODEL, messages: user('hello'), stream: false, options: { temperature: 0, num_predict: 24 } }
      const a = (await (await post(w, '/api/chat', body)).json()) as any
      const b = (await (await post(w, '/api/chat', body)).json()) as any
      expect(a).toMatchObject({ model: MODEL, done: true, done_reason: 'length', eval_count: 24, message: { role: 'assistant' } })
      expect(a.message.content.length).toBeGreaterThan(0)
      expect(a.prompt_eval_count).toBeGreaterThan(1)
      for (const key of ['total_duration', 'prompt_eval_duration', 'eval_duration']) expect(a[key]).toBeGreaterThan(0)
      expect(a.total_duration).toBeGreaterThanOrEqual(a.eval_duration)
      expect(b.message.content).toBe(a.message.content)
      // Another prompt, another answer (the model reads its input).
      const c = (await (await post(w, '/api/chat', { ...body, messages: user('something else entirely') })).json()) as any
      expect(c.message.content).not.toBe(a.message.content)
      expect(c.prompt_eval_count).toBeGreaterThan(a.prompt_eval_count)
    },
    T,
  )

  test(
    'a stream carries the same text as one answer, chunk by chunk, done last with the counts',
    async () => {
      const options = { temperature: 0, num_predict: 40 }
      const one = (await (await post(w, '/api/chat', { model: MODEL, messages: user('stream me'), stream: false, options })).json()) as any
      const res = await post(w, '/api/chat', { model: MODEL, messages: user('stream me'), options })
      expect(res.headers.get('content-type')).toBe('application/x-ndjson')
      const lines = await ndjson(res)
      const last = lines.at(-1)
      expect(last).toMatchObject({ done: true, done_reason: 'length', eval_count: 40 })
      expect(lines.slice(0, -1).every((l) => l.done === false)).toBe(true)
      expect(lines.length).toBeGreaterThan(3)
      expect(lines.map((l) => l.message.content).join('')).toBe(one.message.content)
    },
    T,
  )

  test(
    'generate: templated and raw prompts, streamed and not',
    async () => {
      const options = { temperature: 0, num_predict: 10 }
      const templated = (await (await post(w, '/api/generate', { model: MODEL, prompt: 'hi', stream: false, options })).json()) as any
      const raw = (await (await post(w, '/api/generate', { model: MODEL, prompt: 'hi', raw: true, stream: false, options })).json()) as any
      expect(templated).toMatchObject({ done: true, eval_count: 10 })
      expect(raw).toMatchObject({ done: true, eval_count: 10 })
      // The raw prompt is the text after the start token only: far fewer tokens than through the template.
      expect(raw.prompt_eval_count).toBe(1 + 'hi'.length + 1)
      expect(templated.prompt_eval_count).toBeGreaterThan(raw.prompt_eval_count)
      const streamed = await ndjson(await post(w, '/api/generate', { model: MODEL, prompt: 'hi', raw: true, options }))
      expect(streamed.map((l) => l.response).join('')).toBe(raw.response)
      expect(streamed.at(-1)).toMatchObject({ done: true, eval_count: 10 })
    },
    T,
  )

  test('a stop string ends the answer before it', async () => {
    const options = { temperature: 0, num_predict: 60 }
    const full = (await (await post(w, '/api/generate', { model: MODEL, prompt: 'x', raw: true, stream: false, options })).json()) as any
    const text: string = full.response
    // A stop string taken from the middle of what the model says.
    const stop = text.slice(20, 22)
    const cut = (await (
      await post(w, '/api/generate', { model: MODEL, prompt: 'x', raw: true, stream: false, options: { ...options, stop: [stop] } })
    ).json()) as any
    expect(cut.done_reason).toBe('stop')
    expect(cut.response).toBe(text.slice(0, text.indexOf(stop)))
    expect(cut.eval_count).toBeLessThan(60)
  })

  test('embed: one L2-normalized vector of the embedding width per input', async () => {
    const res = (await (await post(w, '/api/embed', { model: MODEL, input: ['alpha', 'beta'] })).json()) as any
    expect(res.embeddings).toHaveLength(2)
    for (const v of res.embeddings) {
      expect(v).toHaveLength(64)
      expect(Math.hypot(...v)).toBeCloseTo(1, 5)
    }
    expect(res.embeddings[0]).not.toEqual(res.embeddings[1])
    expect(res.prompt_eval_count).toBeGreaterThan(0)
    const single = (await (await post(w, '/api/embed', { model: MODEL, input: 'alpha' })).json()) as any
    expect(single.embeddings[0]).toEqual(res.embeddings[0])
  })

  test(
    'two requests generate at once: both streams are under way before either ends',
    async () => {
      const options = { temperature: 0, num_predict: 1500 }
      const firstChunkAt: number[] = []
      const endAt: number[] = []
      const run = async (i: number) => {
        const res = await post(w, '/api/generate', { model: MODEL, prompt: `p${i}`, raw: true, options })
        const reader = (res.body as ReadableStream<Uint8Array>).getReader()
        let text = ''
        for (;;) {
          const { value, done } = await reader.read()
          if (done) break
          if (firstChunkAt[i] === undefined) firstChunkAt[i] = performance.now()
          text += new TextDecoder().decode(value)
        }
        endAt[i] = performance.now()
        return JSON.parse(text.trim().split('\n').at(-1) as string)
      }
      const [a, b] = await Promise.all([run(0), run(1)])
      expect(a.eval_count).toBe(1500)
      expect(b.eval_count).toBe(1500)
      expect(Math.max(...firstChunkAt)).toBeLessThan(Math.min(...endAt))
      expect((await health(w)).peak_parallel).toBe(2)
    },
    T,
  )

  test(
    'a client that goes away mid-stream frees its sequence',
    async () => {
      const abort = new AbortController()
      const res = await post(
        w,
        '/api/generate',
        { model: MODEL, prompt: 'long', raw: true, options: { temperature: 0, num_predict: 1900 } },
        { signal: abort.signal },
      )
      const reader = (res.body as ReadableStream<Uint8Array>).getReader()
      await reader.read()
      expect((await health(w)).busy).toBe(1)
      abort.abort()
      // Well before the 1900 tokens would be done (over a second here): the generation stopped, not finished.
      const deadline = Date.now() + 400
      while ((await health(w)).busy !== 0) {
        if (Date.now() > deadline) throw new Error('the sequence was not freed')
        await Bun.sleep(20)
      }
      const next = (await (
        await post(w, '/api/chat', { model: MODEL, messages: user('after'), stream: false, options: { num_predict: 3 } })
      ).json()) as any
      expect(next.eval_count).toBe(3)
    },
    T,
  )

  test(
    "bad requests are refused in Ollama's dialect, and nothing breaks",
    async () => {
      const cases: [string, unknown, number, RegExp][] = [
        ['/api/chat', { model: 'other', messages: user('x') }, 404, /not found.*serves "tiny"/],
        ['/api/chat', '{not json', 400, /invalid JSON/],
        ['/api/chat', [1, 2], 400, /JSON object/],
        ['/api/chat', { model: MODEL, messages: [{ role: 'wizard', content: 'x' }] }, 400, /role/],
        ['/api/chat', { model: MODEL, messages: [{ role: 'user', content: 5 }] }, 400, /content must be a string/],
        ['/api/chat', { model: MODEL, messages: 'hi' }, 400, /messages must be a list/],
        ['/api/chat', { model: MODEL, messages: user('x'), options: { temperature: 'hot' } }, 400, /temperature/],
        ['/api/chat', { model: MODEL, messages: user('x'), options: { num_predict: 1.5 } }, 400, /num_predict/],
        ['/api/chat', { model: MODEL, messages: user('x'), format: 'json' }, 400, /format/],
        ['/api/chat', { model: MODEL, messages: user('x'), tools: [] }, 400, /tools/],
        ['/api/generate', { model: MODEL, prompt: 42 }, 400, /prompt must be a string/],
        ['/api/generate', { model: MODEL, prompt: 'x'.repeat(20_000), raw: true }, 400, /context holds 2048/],
        ['/api/embed', { model: MODEL, input: [] }, 400, /input/],
        ['/api/nothing', {}, 404, /no such endpoint/],
      ]
      for (const [path, body, status, message] of cases) {
        const res = await post(w, path, body)
        expect(res.status, `${path} ${JSON.stringify(body).slice(0, 80)}`).toBe(status)
        expect(((await res.json()) as any).error).toMatch(message)
      }
      let deep: unknown = 1
      for (let i = 0; i < 100; i++) deep = { a: deep }
      const tooDeep = await post(w, '/api/chat', { model: MODEL, messages: user('x'), options: deep })
      expect(tooDeep.status).toBe(400)
      const huge = await post(w, '/api/chat', { model: MODEL, messages: user('x'.repeat(9 * 1024 * 1024)) })
      expect(huge.status).toBe(413)
      expect((await fetch(`${w.url}/api/chat`)).status).toBe(405)
      expect(await health(w)).toMatchObject({ status: 'ok', busy: 0 })
    },
    T,
  )
})

describe('one worker, parallel 1', () => {
  let w: ModelWorker
  beforeAll(async () => {
    w = await startModelWorker([])
  }, T)
  afterAll(() => w?.stop())

  test(
    'a second request waits for the first, then runs',
    async () => {
      const options = { temperature: 0, num_predict: 800 }
      const started = [0, 1].map((i) => post(w, '/api/generate', { model: MODEL, prompt: `q${i}`, raw: true, stream: false, options }))
      await Bun.sleep(50)
      expect(await health(w)).toMatchObject({ busy: 1, queued: 1 })
      const results = (await Promise.all(started.map(async (r) => (await r).json()))) as any[]
      expect(results.map((r) => r.eval_count)).toEqual([800, 800])
      expect((await health(w)).peak_parallel).toBe(1)
    },
    T,
  )
})

describe('the CLI refuses what cannot work, exit 2', () => {
  const dir = tempDir('orch-model-worker-cli-')
  afterAll(() => dir.cleanup())

  test('no --model, a file that is not GGUF, a non-loopback host, bad counts', async () => {
    const notGguf = join(dir.path, 'notes.gguf')
    writeFileSync(notGguf, 'just some text, not a model')
    const cases: [string[], RegExp][] = [
      [[], /--model FILE.gguf is required/],
      [['--model', notGguf], /notes.gguf: not a GGUF file/],
      [['--model', join(dir.path, 'missing.gguf')], /missing.gguf: no such file/],
      [['--model', tinyModelPath(), '--host', '0.0.0.0'], /loopback only/],
      [['--model', tinyModelPath(), '--parallel', '0'], /--parallel expects an integer >= 1/],
      [['--model', tinyModelPath(), '--gpu-layers', 'all'], /--gpu-layers expects "auto" or an integer/],
      [['--model', tinyModelPath(), '--port', '70000'], /--port expects 0-65535/],
    ]
    for (const [args, message] of cases) {
      const r = await runCli(['model-worker', ...args])
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.stderr).toMatch(message)
      expect(r.stderr).not.toMatch(/\n\s+at /)
    }
  })

  test('--engine-path without node-llama-cpp in it: where it looked and the command that installs it', async () => {
    const empty = join(dir.path, 'no-engine')
    mkdirSync(empty)
    const r = await runCli(['model-worker', '--model', tinyModelPath(), '--port', '0', '--engine-path', empty, '--json'])
    expect(r.code).toBe(2)
    const error = r.json().error
    expect(error.code).toBe('E_ENGINE_MISSING')
    expect(error.message).toContain(empty)
    expect(error.hint).toContain(`npm install --prefix "${empty}" node-llama-cpp@3.22.1`)
  })
})
