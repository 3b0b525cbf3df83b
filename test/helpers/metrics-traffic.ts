/** Real traffic through a test server, so that every metric family has samples (metrics tests). */
import { expect } from 'bun:test'
import type { TestServe } from './serve.ts'

export async function driveTraffic(t: TestServe): Promise<void> {
  const engine = t.server.deps.engine
  expect((await t.fetch('/health')).status).toBe(200)
  expect((await t.fetch('/stats')).status).toBe(200)
  expect((await t.fetch('/no/such/endpoint')).status).toBe(404)
  const chat = { model: 'llama3.2', messages: [{ role: 'user' as const, content: 'one two three four' }], options: { temperature: 0 } }
  await engine.chatOnce(chat)
  await engine.chatOnce(chat) // a cache hit: deterministic
  await engine.generateOnce({ model: 'llama3.2', prompt: 'a b c' }, { cache: false })
  await engine.embed({ model: 'nomic-embed-text', input: ['x', 'y'] })
  t.fakes[0]?.failNext(1, 500, 'boom')
  await expect(engine.chatOnce({ ...chat, messages: [{ role: 'user', content: 'fails' }] }, { cache: false })).rejects.toThrow()
  await expect(engine.chatOnce({ model: 'no-such-model', messages: [] })).rejects.toThrow()
  const { task } = await t.server.deps.tasks.submit({
    type: 'generate',
    model: 'llama3.2',
    payload: { model: 'llama3.2', prompt: 'durable' },
  })
  for (let i = 0; i < 200 && (await t.server.deps.tasks.get(task.id))?.state !== 'done'; i++) await Bun.sleep(25)
  await Bun.sleep(450) // at least one sampling interval after the traffic
}
