/**
 * `GET /events` over real HTTP: task events arrive in order (ids increasing, submitted → claimed → done per
 * task), a reconnect with Last-Event-ID replays exactly the missed ones, a client too far behind gets a
 * reset, heartbeats keep a quiet stream open, and a client that leaves is unsubscribed.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createApp } from '../../src/server/app.ts'
import { eventRoutes } from '../../src/server/routes/events.ts'
import { startTestServe, type TestServe } from '../helpers/serve.ts'
import { type Frame, sseFrames } from '../helpers/sse.ts'

let s: TestServe
beforeAll(async () => {
  s = await startTestServe({ concurrency: 8, tweak: (c) => (c.server.token = 'events-token') })
}, 30_000)
afterAll(() => s.stop())

const listenerCount = () => (s.server.deps.bus as unknown as { listeners: Set<unknown> }).listeners.size

/** An open /events stream; the subscription exists once this resolves (headers are sent after it is made). */
async function openEvents(query = '', headers: Record<string, string> = {}) {
  const controller = new AbortController()
  const response = await s.fetch(`/events${query}`, { headers, signal: controller.signal })
  expect(response.status).toBe(200)
  expect(response.headers.get('content-type')).toContain('text/event-stream')
  const { next, frames } = sseFrames(response.body as ReadableStream<Uint8Array>)
  return { next, frames, close: () => controller.abort() }
}

async function submitBulk(prompts: string[]): Promise<string[]> {
  const body = prompts.map((prompt) => ({ type: 'generate', model: 'llama3.2', payload: { prompt } }))
  const r = await s.fetch('/queue/submit', { method: 'POST', body: JSON.stringify(body) })
  expect(r.status).toBe(202)
  return ((await r.json()) as { tasks: Array<{ id: string }> }).tasks.map((t) => t.id)
}

/** Read until every id has a `done` event. */
async function readUntilDone(stream: Awaited<ReturnType<typeof openEvents>>, ids: string[]): Promise<void> {
  const pending = new Set(ids)
  while (pending.size > 0) {
    const frame = await stream.next()
    if (frame.event === 'task' && frame.data.change === 'done') pending.delete(frame.data.id)
  }
}

describe('GET /events', () => {
  test('task events arrive in order: ids increasing, submitted → claimed → done for every task', async () => {
    const stream = await openEvents('?types=task')
    const ids = await submitBulk(Array.from({ length: 30 }, (_, i) => `order ${i}`))
    await readUntilDone(stream, ids)
    stream.close()
    const frames = stream.frames
    for (let i = 1; i < frames.length; i++) expect(frames[i]?.id).toBeGreaterThan(frames[i - 1]?.id as number)
    for (const id of ids) {
      const changes = frames.filter((f) => f.data.id === id).map((f) => f.data.change)
      expect(changes).toEqual(['submitted', 'claimed', 'done'])
    }
    expect(frames.every((f) => f.event === 'task' && typeof f.data.at === 'number')).toBe(true)
  })

  test('a reconnect with Last-Event-ID (or ?last_event_id=) replays exactly the missed events', async () => {
    const first = await openEvents('?types=task')
    const ids = await submitBulk(Array.from({ length: 20 }, (_, i) => `resume ${i}`))
    await readUntilDone(first, ids)
    first.close()
    const seen = first.frames
    const cut = seen[9] as Frame
    const last = seen.at(-1) as Frame
    const missed = seen.filter((f) => f.id > cut.id)
    for (const how of ['header', 'query'] as const) {
      const again =
        how === 'header'
          ? await openEvents('?types=task', { 'last-event-id': String(cut.id) })
          : await openEvents(`?types=task&last_event_id=${cut.id}`)
      const replayed: Frame[] = []
      while ((replayed.at(-1)?.id ?? 0) < last.id) replayed.push(await again.next())
      again.close()
      expect(replayed.map((f) => f.id)).toEqual(missed.map((f) => f.id))
      expect(replayed.map((f) => f.data)).toEqual(missed.map((f) => f.data))
    }
  })

  test('a client further behind than the bus keeps gets `event: reset`, then live events', async () => {
    const stream = await openEvents('', { 'last-event-id': '1' })
    const reset = await stream.next()
    expect(reset.event).toBe('reset')
    expect(reset.data.reason).toBe('too_far_behind')
    expect(reset.id).toBe(s.server.deps.bus.lastId)
    const [id] = await submitBulk(['after reset'])
    const next = await stream.next()
    expect(next).toMatchObject({ event: 'task', data: { id, change: 'submitted' } })
    stream.close()
  })

  test('?types= filters; an unknown type or a bad Last-Event-ID is a 400 naming it', async () => {
    const stream = await openEvents('?types=workflow')
    s.server.deps.bus.publish('task', { id: 'ignored' })
    s.server.deps.bus.publish('workflow', { id: 'wf_1', state: 'running' })
    expect(await stream.next()).toMatchObject({ id: s.server.deps.bus.lastId, event: 'workflow', data: { id: 'wf_1' } })
    stream.close()
    const bad = await s.fetch('/events?types=task,gossip')
    expect(bad.status).toBe(400)
    expect(((await bad.json()) as any).error.field).toBe('types')
    const badId = await s.fetch('/events', { headers: { 'last-event-id': 'yesterday' } })
    expect(((await badId.json()) as any).error.field).toBe('Last-Event-ID')
  })

  test('a client that disconnects is unsubscribed from the bus', async () => {
    const before = listenerCount()
    const stream = await openEvents()
    expect(listenerCount()).toBe(before + 1)
    stream.close()
    const deadline = Date.now() + 10_000
    while (listenerCount() !== before && Date.now() < deadline) await Bun.sleep(10)
    expect(listenerCount()).toBe(before)
  })

  test('heartbeat comment lines keep a quiet stream alive', async () => {
    const deps = s.server.deps
    const app = createApp(deps, eventRoutes({ heartbeatMs: 20 }))
    const controller = new AbortController()
    const response = await app.fetch(
      new Request(`${s.url}/events`, { headers: { authorization: 'Bearer events-token' }, signal: controller.signal }),
    )
    const reader = (response.body as ReadableStream<Uint8Array>).getReader()
    let text = ''
    while (!text.includes(': ping')) text += new TextDecoder().decode((await reader.read()).value)
    expect(text.startsWith('retry: 2000\n')).toBe(true)
    await reader.cancel()
    controller.abort()
  })

  test('a client that stops reading gets `event: reset` (slow_consumer) and is closed, not buffered forever', async () => {
    const deps = s.server.deps
    const before = listenerCount()
    const app = createApp(deps, eventRoutes({ maxBuffered: 5 }))
    const response = await app.fetch(new Request(`${s.url}/events?types=scaling`, { headers: { authorization: 'Bearer events-token' } }))
    for (let i = 0; i < 20; i++) deps.bus.publish('scaling', { i })
    expect(listenerCount()).toBe(before)
    const text = await response.text()
    expect(text).toContain('event: reset')
    expect(text).toContain('slow_consumer')
    expect(text.match(/event: scaling/g)?.length).toBeLessThan(20)
  })
})
