import { afterEach, describe, expect, test } from 'bun:test'
import type { Redis } from 'ioredis'
import { defaultConfig } from '../../src/config/schema.ts'
import type { OrchError } from '../../src/core/errors.ts'
import { BreakerSync } from '../../src/scheduler/breaker-sync.ts'
import { Engine } from '../../src/scheduler/engine.ts'
import { connectRedis, type RedisSettings, waitReady } from '../../src/store/redis.ts'
import { type FakeServer, startFakeOllama } from '../helpers/fake-ollama.ts'
import { type RedisServer, startRedis } from '../helpers/redis-server.ts'
import { stubBackend } from '../helpers/stub-backend.ts'

const RESET_MS = 800
const PREFIX = 'bs'
const CHANNEL = `${PREFIX}:breakers`

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function redisServer(): Promise<RedisServer> {
  const server = await startRedis()
  cleanups.push(() => server.stop())
  return server
}

async function fakeOllama(): Promise<FakeServer> {
  const fake = await startFakeOllama()
  cleanups.push(() => fake.stop())
  return fake
}

async function connect(server: RedisServer): Promise<Redis> {
  const settings: RedisSettings = { url: server.url, password: undefined, prefix: PREFIX }
  const client = connectRedis(settings, { name: 'orch-test' })
  cleanups.push(() => client.disconnect())
  await waitReady(client, settings)
  return client
}

/** An instance: its own Redis connection and breaker sync, one backend `gpu1` on the fake. */
async function instance(server: RedisServer, fake: FakeServer, name: string): Promise<{ engine: Engine; sync: BreakerSync }> {
  const client = await connect(server)
  const config = defaultConfig()
  config.backends = [{ name: 'gpu1', type: 'ollama', url: fake.url, concurrency: 4 }]
  config.circuit_breaker.failure_threshold = 2
  config.circuit_breaker.reset_timeout_ms = RESET_MS
  const sync = new BreakerSync({ client, settings: { url: server.url, prefix: PREFIX }, instance: name })
  const engine = new Engine({ config, cache: null, healthIntervalMs: 0, breakerSync: sync })
  cleanups.push(() => engine.close())
  await engine.start()
  return { engine, sync }
}

const breakerOf = (engine: Engine) => {
  const state = engine.backends().find((b) => b.name === 'gpu1')
  if (!state) throw new Error('no backend gpu1')
  return state.breaker
}

const ask = (engine: Engine) => engine.chatOnce({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] })

/** Two failed calls on `engine`: its breaker opens (threshold 2). */
async function failTwice(engine: Engine, fake: FakeServer): Promise<void> {
  fake.failNext(2, 500)
  for (let i = 0; i < 2; i++) await expect(ask(engine)).rejects.toThrow('500')
  expect(breakerOf(engine).state).toBe('open')
}

/** Resolves with the ms it took for `predicate` to hold; rejects after `timeoutMs`. */
async function within(timeoutMs: number, predicate: () => boolean): Promise<number> {
  const started = performance.now()
  while (!predicate()) {
    if (performance.now() - started > timeoutMs) throw new Error(`not within ${timeoutMs} ms`)
    await Bun.sleep(2)
  }
  return performance.now() - started
}

/** Every message published on the breakers channel, as parsed JSON. */
async function listen(server: RedisServer): Promise<Array<Record<string, unknown>>> {
  const client = await connect(server)
  const seen: Array<Record<string, unknown>> = []
  client.on('message', (_channel: string, text: string) => seen.push(JSON.parse(text)))
  await client.subscribe(CHANNEL)
  return seen
}

describe('shared breakers', () => {
  test('an opening on A opens B within ~100 ms, with the same time left; the closing closes B and a later C', async () => {
    const server = await redisServer()
    const fake = await fakeOllama()
    const seen = await listen(server)
    const a = await instance(server, fake, 'a')
    const b = await instance(server, fake, 'b')
    expect(breakerOf(b.engine).state).toBe('closed')

    await failTwice(a.engine, fake)
    const took = await within(500, () => breakerOf(b.engine).state === 'open')
    expect(took).toBeLessThan(150)
    expect(Math.abs(breakerOf(b.engine).retryAfterMs() - breakerOf(a.engine).retryAfterMs())).toBeLessThan(100)

    // B refuses at once, without a call to the backend.
    const calls = fake.stats.total
    const started = performance.now()
    const refused = (await ask(b.engine).catch((error) => error)) as OrchError
    expect(refused.code).toBe('E_BREAKER_OPEN')
    expect(performance.now() - started).toBeLessThan(50)
    expect(fake.stats.total).toBe(calls)

    // One message, from A: B applied it without passing it back.
    await Bun.sleep(50)
    expect(seen).toHaveLength(1)
    expect(seen[0]).toMatchObject({ backend: 'gpu1', state: 'open', instance: 'a', reset_ms: RESET_MS })

    // An instance started later reads the state kept in the hash.
    const c = await instance(server, fake, 'c')
    expect(breakerOf(c.engine).state).toBe('open')
    expect(Math.abs(breakerOf(c.engine).retryAfterMs() - breakerOf(a.engine).retryAfterMs())).toBeLessThan(100)

    // A's trial succeeds: A closes, and so do B and C (closed, not merely half-open).
    await within(RESET_MS + 500, () => breakerOf(a.engine).state === 'half_open')
    await ask(a.engine)
    expect(breakerOf(a.engine).state).toBe('closed')
    await within(150, () => breakerOf(b.engine).state === 'closed' && breakerOf(c.engine).state === 'closed')
    expect(fake.stats.total).toBe(calls + 1)
    await Bun.sleep(50)
    expect(seen.map((m) => [m.instance, m.state])).toEqual([
      ['a', 'open'],
      ['a', 'closed'],
    ])
  }, 15_000)

  test('after a Redis restart the subscriptions come back (ioredis resubscribes) and the sync works again', async () => {
    const server = await redisServer()
    const fake = await fakeOllama()
    const a = await instance(server, fake, 'a')
    const b = await instance(server, fake, 'b')
    const probe = await connect(server)
    const subscribers = async () => ((await probe.pubsub('NUMSUB', CHANNEL)) as [string, number])[1]
    expect(await subscribers()).toBe(2)

    await server.restart({ kill: true })
    await waitReady(probe, { url: server.url, password: undefined, prefix: PREFIX }, 5000)
    const deadline = Date.now() + 5000
    while ((await subscribers()) < 2 && Date.now() < deadline) await Bun.sleep(20)
    expect(await subscribers()).toBe(2)

    await failTwice(b.engine, fake)
    await within(500, () => breakerOf(a.engine).state === 'open')
  }, 15_000)

  test('Redis down: each breaker goes on alone and requests see no Redis error; back: the opening is passed on', async () => {
    const server = await redisServer()
    const fake = await fakeOllama()
    const a = await instance(server, fake, 'a')
    const b = await instance(server, fake, 'b')

    await server.halt({ kill: true })
    await failTwice(a.engine, fake)
    expect(((await ask(a.engine).catch((error) => error)) as OrchError).code).toBe('E_BREAKER_OPEN')
    // B knows nothing and still calls the backend.
    await ask(b.engine)
    expect(breakerOf(b.engine).state).toBe('closed')

    await server.start()
    await within(5000, () => breakerOf(b.engine).state === 'open')
    expect(Math.abs(breakerOf(b.engine).retryAfterMs() - breakerOf(a.engine).retryAfterMs())).toBeLessThan(100)
  }, 15_000)

  test('a message older than the last one heard of, or not a breaker state, changes nothing', async () => {
    const server = await redisServer()
    const fake = await fakeOllama()
    const b = await instance(server, fake, 'b')
    const raw = await connect(server)
    const message = (seq: number, state: 'open' | 'closed') =>
      JSON.stringify({ seq, backend: 'gpu1', state, opened_at: Date.now(), reset_ms: RESET_MS, instance: 'x', sent_at: Date.now() })

    await raw.publish(CHANNEL, message(10, 'open'))
    await within(500, () => breakerOf(b.engine).state === 'open')
    await raw.publish(CHANNEL, message(9, 'closed'))
    await raw.publish(CHANNEL, '{"state":"closed"}')
    await raw.publish(CHANNEL, 'not json')
    await Bun.sleep(100)
    expect(breakerOf(b.engine).state).toBe('open')
    await raw.publish(CHANNEL, message(11, 'closed'))
    await within(500, () => breakerOf(b.engine).state === 'closed')
  })

  test('a configured backend added again takes the state others reported; a pool worker is not shared', async () => {
    const server = await redisServer()
    const fake = await fakeOllama()
    const a = await instance(server, fake, 'a')
    const raw = await connect(server)
    const seen = await listen(server)
    const opened = (seq: number, backend: string) =>
      JSON.stringify({ seq, backend, state: 'open', opened_at: Date.now(), reset_ms: RESET_MS, instance: 'x', sent_at: Date.now() })
    await raw.publish(CHANNEL, opened(1, 'gpu1'))
    await raw.publish(CHANNEL, opened(2, 'llama/w1'))
    await within(500, () => breakerOf(a.engine).state === 'open')

    // gpu1 replaced (a restarted server at another address): its new breaker takes the cluster's state.
    a.engine.scheduler.removeBackend('gpu1')
    const again = a.engine.scheduler.addBackend({ backend: stubBackend('gpu1'), concurrency: 1 })
    expect(again.breaker.state).toBe('open')

    // A pool worker (not under backends:) is this machine's own: neither taken nor told.
    const worker = a.engine.scheduler.addBackend({ backend: stubBackend('llama/w1'), concurrency: 1 })
    expect(worker.breaker.state).toBe('closed')
    for (let i = 0; i < 2; i++) worker.breaker.onFailure()
    expect(worker.breaker.state).toBe('open')
    await Bun.sleep(100)
    expect(seen.filter((m) => m.instance === 'a')).toEqual([])
  })
})
