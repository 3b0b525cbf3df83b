/**
 * The task API over real HTTP: a real `orch serve` (sqlite, runner, engine) on a free loopback port in front
 * of fake Ollama servers — fake0 answers at once, fake1 serves the model `slow` and never answers, so its
 * tasks stay running until cancelled.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { defaultConfig } from '../../src/config/schema.ts'
import { ConfigError } from '../../src/core/errors.ts'
import { checkBind, startServe } from '../../src/server/serve.ts'
import { tempDir } from '../helpers/cli.ts'
import { startTestServe, type TestServe } from '../helpers/serve.ts'

const TOKEN = 'test-token-123'
const LIMIT = 64 * 1024
let s: TestServe

beforeAll(async () => {
  s = await startTestServe({
    fakes: [{}, { models: ['slow'] }],
    concurrency: 16,
    tweak: (c) => {
      c.server.token = TOKEN
      c.server.body_limit_bytes = LIMIT
    },
  })
  // Only after start-up: a hanging fake would hold up the first health check and model discovery.
  s.fakes[1]?.set({ hang: 'before-headers' })
}, 30_000)
afterAll(() => s.stop())

const gen = (prompt: string, extra: Record<string, unknown> = {}) => ({
  type: 'generate',
  model: 'llama3.2',
  payload: { prompt },
  ...extra,
})
const slow = (prompt: string) => ({ type: 'generate', model: 'slow', payload: { prompt } })

function post(body: unknown, headers: Record<string, string> = {}) {
  return s.fetch('/queue/submit', {
    method: 'POST',
    body: JSON.stringify(body),
    headers: { 'content-type': 'application/json', ...headers },
  })
}
async function submitOne(body: unknown): Promise<string> {
  const r = await post(body)
  expect(r.status).toBe(202)
  return ((await r.json()) as { id: string }).id
}
async function getJson(path: string, init?: RequestInit): Promise<{ status: number; body: any }> {
  const r = await s.fetch(path, init)
  return { status: r.status, body: await r.json() }
}
const listenerCount = () => (s.server.deps.bus as unknown as { listeners: Set<unknown> }).listeners.size

describe('POST /queue/submit', () => {
  test('202 once committed, then the task runs: wait returns it done with the fake’s echo', async () => {
    const r = await post(gen('hello from the api'))
    expect(r.status).toBe(202)
    const body = (await r.json()) as { id: string; state: string; created: boolean }
    expect(body).toMatchObject({ state: 'queued', created: true })
    expect(r.headers.get('location')).toBe(`/tasks/${body.id}`)
    const waited = await getJson(`/tasks/${body.id}/wait?timeout=30s`)
    expect(waited.status).toBe(200)
    expect(waited.body.finished).toBe(true)
    expect(waited.body.task).toMatchObject({ id: body.id, state: 'done', attempts: 1, model: 'llama3.2' })
    expect(waited.body.task.result.response).toBe('hello from the api')
  })

  test('model defaults to payload.model; chat and embed payloads are accepted', async () => {
    const chat = await submitOne({ type: 'chat', payload: { model: 'llama3.2', messages: [{ role: 'user', content: 'hi chat' }] } })
    const embed = await submitOne({ type: 'embed', model: 'nomic-embed-text', payload: { input: ['a', 'b'] } })
    const c = await getJson(`/tasks/${chat}/wait?timeout=30s`)
    expect(c.body.task.model).toBe('llama3.2')
    expect(c.body.task.result.message.content).toBe('hi chat')
    const e = await getJson(`/tasks/${embed}/wait?timeout=30s`)
    expect(e.body.task.result.embeddings).toHaveLength(2)
  })

  test('1,000 tasks over HTTP (single and bulk, concurrent) all finish exactly once', async () => {
    const tag = `k${Date.now()}`
    const prompts = Array.from({ length: 1000 }, (_, i) => `${tag} job ${i}`)
    const ids: string[] = []
    // 400 single submissions, 16 at a time, while 12 bulk requests of 50 go in concurrently.
    const singles = async (from: number) => {
      for (let i = from; i < 400; i += 16) ids.push(await submitOne(gen(prompts[i] as string)))
    }
    const bulk = async (chunk: number) => {
      const body = prompts.slice(400 + chunk * 50, 450 + chunk * 50).map((p) => gen(p))
      const r = await post(body)
      expect(r.status).toBe(202)
      const { tasks } = (await r.json()) as { tasks: Array<{ id: string; created: boolean }> }
      expect(tasks).toHaveLength(50)
      ids.push(...tasks.map((t) => t.id))
    }
    await Promise.all([...Array.from({ length: 16 }, (_, i) => singles(i)), ...Array.from({ length: 12 }, (_, i) => bulk(i))])
    expect(new Set(ids).size).toBe(1000)
    const finished: any[] = []
    const waitAll = async (from: number) => {
      for (let i = from; i < ids.length; i += 32) finished.push((await getJson(`/tasks/${ids[i]}/wait?timeout=60s`)).body)
    }
    await Promise.all(Array.from({ length: 32 }, (_, i) => waitAll(i)))
    expect(finished).toHaveLength(1000)
    for (const { finished: done, task } of finished) {
      expect(done).toBe(true)
      expect(task.state).toBe('done')
      expect(task.attempts).toBe(1)
      expect(task.result.response).toBe(task.payload.prompt)
    }
    const calls = (s.fakes[0]?.calls ?? []).filter((c) => typeof c.body?.prompt === 'string' && c.body.prompt.startsWith(tag))
    expect(calls).toHaveLength(1000)
    expect(new Set(calls.map((c) => c.body.prompt)).size).toBe(1000)
  }, 120_000)

  test('an idempotency key (header or body) gives the same task and one row', async () => {
    const first = await post(gen('idem header', { tenant: 'idem' }), { 'idempotency-key': 'key-h' })
    const again = await post(gen('idem header', { tenant: 'idem' }), { 'idempotency-key': 'key-h' })
    expect([first.status, again.status]).toEqual([202, 200])
    const [a, b] = (await Promise.all([first.json(), again.json()])) as Array<{ id: string; created: boolean }>
    expect(b?.id).toBe(a?.id as string)
    expect([a?.created, b?.created]).toEqual([true, false])
    const ids = await Promise.all(
      [1, 2, 3].map(
        async () => (await (await post(gen('idem body', { tenant: 'idem', idempotency_key: 'key-b' }))).json()) as { id: string },
      ),
    )
    expect(new Set(ids.map((x) => x.id)).size).toBe(1)
    const bulk1 = (await (
      await post([gen('b0', { tenant: 'idem' }), gen('b1', { tenant: 'idem' })], { 'idempotency-key': 'key-bulk' })
    ).json()) as any
    const bulk2 = (await (
      await post([gen('b0', { tenant: 'idem' }), gen('b1', { tenant: 'idem' })], { 'idempotency-key': 'key-bulk' })
    ).json()) as any
    expect(bulk2.tasks.map((t: any) => t.id)).toEqual(bulk1.tasks.map((t: any) => t.id))
    expect(bulk2.tasks.map((t: any) => t.created)).toEqual([false, false])
    const rows = await getJson('/tasks?tenant=idem&limit=100')
    expect(rows.body.tasks).toHaveLength(4)
    expect(rows.body.tasks.map((t: any) => t.idempotency_key).sort()).toEqual(['key-b', 'key-bulk/0', 'key-bulk/1', 'key-h'])
  })

  test('400 names the field, for a single task and by index in a bulk body; nothing of a bad bulk is queued', async () => {
    const cases: Array<[unknown, string]> = [
      [{ type: 'generate', model: 'llama3.2', payload: { prompt: 42 } }, 'payload.prompt'],
      [{ type: 'generate', payload: { prompt: 'no model' } }, 'model'],
      [{ type: 'summarize', model: 'llama3.2', payload: {} }, 'type'],
      [{ ...gen('typo'), priorty: 2 }, 'priorty'],
      [{ type: 'chat', model: 'llama3.2', payload: { messages: [{ role: 'user' }] } }, 'payload.messages[0].content'],
      [
        [gen('ok', { tenant: 'bad-bulk' }), gen('ok', { tenant: 'bad-bulk' }), gen('ok', { tenant: 'bad-bulk' }), { type: 'nope' }],
        '[3].type',
      ],
      [[gen('ok'), { ...gen('x'), max_attempts: 0 }], '[1].max_attempts'],
      // A model name goes into log lines: a newline would forge one.
      [{ type: 'generate', model: 'llama3.2\nforged log line', payload: { prompt: 'x' } }, 'model'],
      [{ type: 'generate', payload: { model: 'm\u0000', prompt: 'x' } }, 'payload.model'],
      [{ ...gen('t'), tenant: `a${'\u0000'}b` }, 'tenant'],
    ]
    for (const [body, field] of cases) {
      const r = await post(body)
      expect(r.status).toBe(400)
      const { error } = (await r.json()) as { error: { code: string; message: string; field: string } }
      expect(error).toMatchObject({ code: 'E_VALIDATION', field })
      expect(error.message.startsWith(`${field}:`)).toBe(true)
    }
    expect((await getJson('/tasks?tenant=bad-bulk')).body.tasks).toHaveLength(0)
    const broken = await s.fetch('/queue/submit', { method: 'POST', body: '{"type": "generate",' })
    expect(broken.status).toBe(400)
    expect(((await broken.json()) as any).error.code).toBe('E_BAD_JSON')
  })

  test('413 for a body over server.body_limit_bytes, declared or chunked', async () => {
    const big = JSON.stringify(gen('x'.repeat(LIMIT + 100)))
    const declared = await post(JSON.parse(big))
    expect(declared.status).toBe(413)
    // Over the wire Bun's own cap (maxRequestBodySize) may answer first; the app's answer names the limit.
    const inProcess = await s.server.app.fetch(
      new Request(`${s.url}/queue/submit`, { method: 'POST', body: big, headers: { authorization: `Bearer ${TOKEN}` } }),
    )
    expect(inProcess.status).toBe(413)
    expect(((await inProcess.json()) as any).error).toMatchObject({ code: 'E_BODY_TOO_LARGE' })
    const bytes = new TextEncoder().encode(big)
    const chunked = () =>
      new ReadableStream<Uint8Array>({
        start(controller) {
          for (let i = 0; i < bytes.length; i += 8192) controller.enqueue(bytes.slice(i, i + 8192))
          controller.close()
        },
      })
    const r = await s.fetch('/queue/submit', { method: 'POST', body: chunked(), headers: { 'content-type': 'application/json' } })
    expect(r.status).toBe(413)
    const counted = await s.server.app.fetch(
      new Request(`${s.url}/queue/submit`, { method: 'POST', body: chunked(), headers: { authorization: `Bearer ${TOKEN}` } }),
    )
    expect(counted.status).toBe(413)
    expect(((await counted.json()) as any).error.code).toBe('E_BODY_TOO_LARGE')
    expect(await post(gen('x'.repeat(LIMIT - 200)))).toHaveProperty('status', 202)
  })
})

describe('auth and exposure', () => {
  test('401 without a token and with a wrong one; /health stays public', async () => {
    const none = await fetch(`${s.url}/tasks`)
    expect(none.status).toBe(401)
    expect(((await none.json()) as any).error.code).toBe('E_UNAUTHORIZED')
    const wrong = await fetch(`${s.url}/queue/submit`, {
      method: 'POST',
      body: JSON.stringify(gen('no')),
      headers: { authorization: 'Bearer nope' },
    })
    expect(wrong.status).toBe(401)
    expect((await fetch(`${s.url}/events`)).status).toBe(401)
    expect((await fetch(`${s.url}/health`)).status).toBe(200)
  })

  test('a Host header that is not allowed gets 403 (DNS rebinding)', async () => {
    const r = await s.fetch('/tasks', { headers: { host: 'evil.example' } })
    expect(r.status).toBe(403)
  })

  test('binding 0.0.0.0 without server.token is refused at start, naming server.token', async () => {
    const dir = tempDir('orch-bind-')
    try {
      const config = defaultConfig()
      config.server.host = '0.0.0.0'
      const started = startServe({ config, home: dir.path, version: 'test', port: 0 })
      await expect(started).rejects.toBeInstanceOf(ConfigError)
      await expect(started).rejects.toThrow('server.token')
      // With a token the check passes (checked without binding anything beyond loopback).
      expect(() => checkBind('0.0.0.0', 'a-token-of-16-chr')).not.toThrow()
      expect(() => checkBind('127.0.0.1', undefined)).not.toThrow()
      // A token guessed in a few tries guards nothing on the network: 15 characters are refused, 16 pass.
      expect(() => checkBind('0.0.0.0', 'x')).toThrow('server.token')
      expect(() => checkBind('0.0.0.0', 'x'.repeat(15))).toThrow('at least 16 characters')
      expect(() => checkBind('0.0.0.0', 'x'.repeat(16))).not.toThrow()
    } finally {
      dir.cleanup()
    }
  })
})

describe('GET /tasks, DELETE /tasks/{id}, wait', () => {
  test('list pages with next_cursor, newest first, filtered by tenant and state', async () => {
    const r = await post(Array.from({ length: 25 }, (_, i) => gen(`page ${i}`, { tenant: 'pages' })))
    const submitted = ((await r.json()) as any).tasks.map((t: any) => t.id) as string[]
    const seen: string[] = []
    let cursor: string | null = null
    const sizes: number[] = []
    do {
      const page = await getJson(`/tasks?tenant=pages&limit=10${cursor ? `&cursor=${cursor}` : ''}`)
      expect(page.status).toBe(200)
      sizes.push(page.body.tasks.length)
      seen.push(...page.body.tasks.map((t: any) => t.id))
      cursor = page.body.next_cursor
    } while (cursor)
    expect(sizes).toEqual([10, 10, 5])
    expect(seen.sort()).toEqual([...submitted].sort())
    await Promise.all(submitted.map((id) => s.fetch(`/tasks/${id}/wait`).then((x) => x.text())))
    const done = await getJson('/tasks?tenant=pages&state=done&limit=100')
    expect(done.body.tasks).toHaveLength(25)
    expect((await getJson('/tasks?state=finished')).body.error.field).toBe('state')
    expect((await getJson('/tasks?limit=0')).body.error.field).toBe('limit')
    expect((await getJson('/tasks?cursor=garbage')).status).toBe(400)
  })

  test('every listed task equals its GET /tasks/{id}, field for field, done and failed', async () => {
    const inputs = [
      ...Array.from({ length: 5 }, (_, i) => gen(`field ${i}`, { tenant: 'fields', priority: i })),
      // No backend serves this model: the task fails at once and carries its error.
      ...Array.from({ length: 2 }, (_, i) => ({ ...gen(`field ${5 + i}`, { tenant: 'fields' }), model: 'no-such-model' })),
    ]
    const ids = ((await (await post(inputs)).json()) as any).tasks.map((t: any) => t.id) as string[]
    // Compared once nothing moves: a running task's lease and updated_at change between two reads.
    await Promise.all(ids.map((id) => s.fetch(`/tasks/${id}/wait`).then((x) => x.text())))
    const page = await getJson('/tasks?tenant=fields&limit=100')
    const listed = page.body.tasks as any[]
    expect(listed.map((t) => t.id).sort()).toEqual([...ids].sort())
    for (const task of listed) expect(task).toEqual((await getJson(`/tasks/${task.id}`)).body)
    // The payload is the submitted one, not a position in the page.
    expect(listed.map((t) => t.payload.prompt).sort()).toEqual(inputs.map((t) => t.payload.prompt).sort())
    expect(listed.filter((t) => t.state === 'done' && t.result !== null)).toHaveLength(5)
    expect(listed.filter((t) => t.state === 'failed' && t.error !== null)).toHaveLength(2)
  })

  test('get: 404 E_TASK_NOT_FOUND for an unknown id', async () => {
    const r = await getJson('/tasks/t_nope')
    expect(r.status).toBe(404)
    expect(r.body.error.code).toBe('E_TASK_NOT_FOUND')
  })

  test('wait times out with finished:false; cancel stops it; a finished task is not cancelled again (409)', async () => {
    const id = await submitOne(slow('never answered'))
    const started = performance.now()
    const waited = await getJson(`/tasks/${id}/wait?timeout=300ms`)
    expect(performance.now() - started).toBeGreaterThanOrEqual(250)
    expect(waited.status).toBe(200)
    expect(waited.body.finished).toBe(false)
    expect(['queued', 'running']).toContain(waited.body.task.state)
    const cancelled = await getJson(`/tasks/${id}`, { method: 'DELETE' })
    expect(cancelled.status).toBe(200)
    expect(cancelled.body.state).toBe('cancelled')
    expect((await getJson(`/tasks/${id}/wait?timeout=5s`)).body).toMatchObject({ finished: true, task: { state: 'cancelled' } })
    const again = await getJson(`/tasks/${id}`, { method: 'DELETE' })
    expect(again.status).toBe(409)
    expect(again.body.error).toMatchObject({ code: 'E_TASK_FINISHED', state: 'cancelled' })
    const doneId = await submitOne(gen('finish me'))
    await s.fetch(`/tasks/${doneId}/wait`).then((x) => x.text())
    expect((await getJson(`/tasks/${doneId}`, { method: 'DELETE' })).body.error.state).toBe('done')
    expect((await getJson('/tasks/t_nope', { method: 'DELETE' })).status).toBe(404)
    expect((await getJson(`/tasks/${doneId}/wait?timeout=soon`)).body.error.field).toBe('timeout')
  })

  test('a waiting client that leaves is unsubscribed from the bus', async () => {
    const id = await submitOne(slow('abandoned wait'))
    const before = listenerCount()
    const controller = new AbortController()
    const pending = s.fetch(`/tasks/${id}/wait?timeout=60s`, { signal: controller.signal }).catch(() => undefined)
    await until(() => listenerCount() === before + 1)
    controller.abort()
    await pending
    await until(() => listenerCount() === before)
    await s.fetch(`/tasks/${id}`, { method: 'DELETE' })
  })
})

async function until(predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await Bun.sleep(10)
  }
}
