import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import type { Redis } from 'ioredis'
import { type CachingConfig, createCache, type ResponseCache, redisCache } from '../../src/cache/index.ts'
import { defaultConfig } from '../../src/config/schema.ts'
import { OrchError } from '../../src/core/errors.ts'
import { Engine } from '../../src/scheduler/engine.ts'
import { connectRedis, type RedisSettings, waitReady } from '../../src/store/redis.ts'
import { runCli, tempDir } from '../helpers/cli.ts'
import { type RedisServer, startRedis } from '../helpers/redis-server.ts'
import { stubBackend } from '../helpers/stub-backend.ts'

let server: RedisServer
let prefixes = 0
const clients: Redis[] = []
const caches: ResponseCache[] = []

beforeAll(async () => {
  server = await startRedis()
})
afterAll(async () => {
  await server.stop()
})
afterEach(async () => {
  for (const cache of caches.splice(0)) await cache.close()
  for (const client of clients.splice(0)) client.disconnect()
})

/** A connected client; each test has a prefix of its own, so tests never see each other's keys. */
async function connect(prefix: string): Promise<{ client: Redis; settings: RedisSettings }> {
  const settings: RedisSettings = { url: server.url, password: undefined, prefix }
  const client = connectRedis(settings, { name: 'orch-test' })
  clients.push(client)
  await waitReady(client, settings)
  return { client, settings }
}

const newPrefix = () => `t${++prefixes}`

async function open(prefix: string, over: { ttlSeconds?: number; log?: { debug(m: string): void } } = {}) {
  const { client, settings } = await connect(prefix)
  const cache = redisCache(client, { prefix, url: settings.url, ttlSeconds: over.ttlSeconds ?? 60, ...(over.log ? { log: over.log } : {}) })
  caches.push(cache)
  return { cache, client }
}

const answer = (content: string) => ({ model: 'llama3.2', message: { role: 'assistant', content }, done: true })
const entry = (text = 'Rayleigh scattering.', model = 'llama3.2') => ({ kind: 'chat' as const, model, value: answer(text) })
const contentOf = async (cache: ResponseCache, key: string) =>
  ((await cache.get(key))?.value as ReturnType<typeof answer> | undefined)?.message.content

describe('redis cache', () => {
  test('two caches on two connections share their entries and their counters', async () => {
    const prefix = newPrefix()
    const a = await open(prefix)
    const b = await open(prefix)
    expect(await b.cache.get('k')).toBeUndefined()
    await a.cache.set('k', entry('from a'))
    const hit = await b.cache.get('k')
    expect(hit).toMatchObject({ kind: 'chat', model: 'llama3.2', value: answer('from a') })
    expect(typeof hit?.created_at).toBe('number')
    await b.cache.set('k', entry('from b'))
    expect(await contentOf(a.cache, 'k')).toBe('from b')
    // Stored under the documented key with the configured TTL.
    expect(await a.client.exists(`${prefix}:cache:k`)).toBe(1)
    // Another prefix is another cluster: nothing shared.
    const other = await open(newPrefix())
    expect(await other.cache.get('k')).toBeUndefined()
    // Counters: a's and b's, once flushed (close flushes).
    await b.cache.close()
    const stats = await a.cache.stats()
    expect(stats).toMatchObject({ backend: 'redis', entries: 1, sets: 2, url: server.url, errors: 0 })
    expect(stats.hits).toBe(2)
    expect(stats.misses).toBe(1)
    expect(stats.bytes).toBe(Buffer.byteLength(JSON.stringify(answer('from b'))))
  })

  test('an entry lives cache_ttl_seconds: SET with EX, gone after it', async () => {
    const prefix = newPrefix()
    const { cache, client } = await open(prefix, { ttlSeconds: 1 })
    await cache.set('k', entry())
    const pttl = await client.pttl(`${prefix}:cache:k`)
    expect(pttl).toBeGreaterThan(0)
    expect(pttl).toBeLessThanOrEqual(1000)
    expect(await contentOf(cache, 'k')).toBe('Rayleigh scattering.')
    await Bun.sleep(1150)
    expect(await cache.get('k')).toBeUndefined()
    // The bookkeeping forgets it too: no entry counted, and counted as expired.
    expect(await cache.stats()).toMatchObject({ entries: 0, bytes: 0, expired: 1 })
  })

  test('stats: entries, bytes, oldest and newest', async () => {
    const { cache } = await open(newPrefix())
    expect(await cache.stats()).toMatchObject({ entries: 0, bytes: 0, oldest_at: null, newest_at: null })
    const before = Date.now()
    await cache.set('a', entry('one'))
    await Bun.sleep(5)
    await cache.set('b', entry('two'))
    await Bun.sleep(5)
    await cache.set('a', entry('one again'))
    const stats = await cache.stats()
    expect(stats.entries).toBe(2)
    expect(stats.sets).toBe(3)
    expect(stats.bytes).toBe(Buffer.byteLength(JSON.stringify(answer('one again'))) + Buffer.byteLength(JSON.stringify(answer('two'))))
    expect(stats.oldest_at).toBeGreaterThanOrEqual(before)
    expect(stats.newest_at).toBeGreaterThan(stats.oldest_at as number)
  })

  test('clear: one model (both spellings), only expired ones, everything', async () => {
    const prefix = newPrefix()
    const { cache, client } = await open(prefix)
    await cache.set('a', entry('1', 'llama3.2'))
    await cache.set('b', entry('2', 'llama3.2:latest'))
    await cache.set('c', entry('3', 'qwen2.5:7b'))
    expect(await cache.clear({ expiredOnly: true })).toBe(0)
    expect(await cache.clear({ model: 'llama3.2' })).toBe(2)
    expect(await cache.get('a')).toBeUndefined()
    expect(await contentOf(cache, 'c')).toBe('3')
    expect(await cache.stats()).toMatchObject({ entries: 1, bytes: Buffer.byteLength(JSON.stringify(answer('3'))) })

    // An entry past its time: its meta says so (a store of a short-TTL instance).
    const short = redisCache(client, { prefix, url: server.url, ttlSeconds: 1, now: () => Date.now() - 5000 })
    caches.push(short)
    await short.set('old', entry('old', 'qwen2.5:7b'))
    expect(await cache.clear({ expiredOnly: true, model: 'llama3.2' })).toBe(0)
    expect(await cache.clear({ expiredOnly: true })).toBe(1)
    expect(await contentOf(cache, 'c')).toBe('3')

    // Everything, also an entry the bookkeeping does not know (SCAN over the prefix), not another prefix.
    await client.set(`${prefix}:cache:stray`, JSON.stringify({ kind: 'chat', model: 'm', created_at: 1, value: {} }))
    await client.set(`${prefix}:cache:other:cache:x`, 'another cluster whose prefix starts like this one')
    expect(await cache.clear()).toBe(2)
    expect(await cache.get('c')).toBeUndefined()
    expect(await client.exists(`${prefix}:cache:stray`)).toBe(0)
    expect(await client.exists(`${prefix}:cache:other:cache:x`)).toBe(1)
    expect(await cache.stats()).toMatchObject({ entries: 0, bytes: 0 })
  })

  test('a damaged or foreign value is a miss, not an error', async () => {
    const prefix = newPrefix()
    const { cache, client } = await open(prefix)
    await client.set(`${prefix}:cache:bad`, '{not json')
    await client.set(`${prefix}:cache:odd`, JSON.stringify({ some: 'thing' }))
    expect(await cache.get('bad')).toBeUndefined()
    expect(await cache.get('odd')).toBeUndefined()
  })

  test('Redis halted: a lookup is a miss, a store is dropped, logged once; back: the same object works again', async () => {
    // Its own server, appending every write, so a kill loses nothing it acknowledged.
    const own = await startRedis({ aof: true })
    try {
      const prefix = newPrefix()
      const settings: RedisSettings = { url: own.url, password: undefined, prefix }
      const client = connectRedis(settings)
      clients.push(client)
      await waitReady(client, settings)
      const logged: string[] = []
      const cache = redisCache(client, { prefix, url: own.url, ttlSeconds: 60, log: { debug: (m) => logged.push(m) } })
      caches.push(cache)
      await cache.set('k', entry('kept'))

      await own.halt({ kill: true })
      const started = performance.now()
      expect(await cache.get('k')).toBeUndefined()
      await cache.set('k2', entry('dropped'))
      expect(await cache.get('k2')).toBeUndefined()
      expect(performance.now() - started).toBeLessThan(2000)
      expect(logged).toHaveLength(1)
      expect(logged[0]).toContain(own.url)
      // The operator's calls say what is wrong instead.
      const refused = await Promise.resolve(cache.stats()).catch((error) => error)
      expect(refused).toBeInstanceOf(OrchError)
      expect((refused as OrchError).code).toBe('E_REDIS_UNAVAILABLE')

      await own.start()
      await waitReady(client, settings, 5000)
      expect(await contentOf(cache, 'k')).toBe('kept')
      await cache.set('k2', entry('stored now'))
      expect(await contentOf(cache, 'k2')).toBe('stored now')
      expect(logged).toHaveLength(2)
      const stats = await cache.stats()
      expect(stats.errors).toBe(3)
      expect(stats.entries).toBe(2)
    } finally {
      await own.stop()
    }
  }, 15_000)
})

describe('engines sharing the redis cache', () => {
  test("one instance's answer is another's hit; with Redis gone requests still get answers", async () => {
    const own = await startRedis()
    try {
      const prefix = newPrefix()
      const settings: RedisSettings = { url: own.url, password: undefined, prefix }
      const engines: Engine[] = []
      const backends = [stubBackend('a', { autoMs: 1 }), stubBackend('b', { autoMs: 1 })]
      for (const backend of backends) {
        const client = connectRedis(settings)
        clients.push(client)
        await waitReady(client, settings)
        const config = defaultConfig()
        config.backends = [{ name: backend.name, type: 'ollama', url: backend.url, concurrency: 4 }]
        const cache = redisCache(client, { prefix, url: own.url, ttlSeconds: 60 })
        engines.push(new Engine({ config, backends: [backend], cache, healthIntervalMs: 0 }))
      }
      const [one, two] = engines as [Engine, Engine]
      const request = { model: 'm', messages: [{ role: 'user' as const, content: 'why is the sky blue' }], options: { temperature: 0 } }
      const first = await one.chatOnce(request)
      await Bun.sleep(20)
      const second = await two.chatOnce(request)
      expect(second.message.content).toBe(first.message.content)
      expect(backends.map((b) => b.calls.length)).toEqual([1, 0])
      expect(two.counters).toMatchObject({ cache_hits: 1, cache_misses: 0 })

      await own.halt({ kill: true })
      const other = { ...request, messages: [{ role: 'user' as const, content: 'and the sunset red' }] }
      await two.chatOnce(other)
      await two.chatOnce(other)
      expect(backends[1]?.calls).toHaveLength(2)
      for (const engine of engines) await engine.close()
    } finally {
      await own.stop()
    }
  })
})

describe('createCache: redis', () => {
  const caching = (over: Partial<CachingConfig>): CachingConfig => ({
    ...defaultConfig().infrastructure_system.llm_orchestration.caching,
    ...over,
  })

  test('built on the connection it is given, with cache_ttl_seconds', async () => {
    const prefix = newPrefix()
    const redis = await connect(prefix)
    const cache = createCache(caching({ cache_backend: 'redis', cache_ttl_seconds: 7 }), process.cwd(), redis)
    if (!cache) throw new Error('expected a cache')
    caches.push(cache)
    await cache.set('k', entry())
    const pttl = await redis.client.pttl(`${prefix}:cache:k`)
    expect(pttl).toBeGreaterThan(6000)
    expect(pttl).toBeLessThanOrEqual(7000)
    expect(await cache.stats()).toMatchObject({ backend: 'redis', entries: 1 })
  })

  test('without a connection: a usage error that names event_bus_type', () => {
    try {
      createCache(caching({ cache_backend: 'redis' }))
      throw new Error('expected an error')
    } catch (error) {
      expect(error).toBeInstanceOf(OrchError)
      expect((error as OrchError).exitCode).toBe(2)
      expect((error as OrchError).message).toContain('event_bus_type: redis')
    }
  })
})

describe("orch cache stats|clear on the cluster's Redis", () => {
  test('read and clear the shared cache under redis_prefix', async () => {
    const prefix = newPrefix()
    const { cache } = await open(prefix)
    await cache.set('a', entry('1', 'llama3.2'))
    await cache.set('b', entry('2', 'qwen2.5:7b'))
    await cache.get('a')
    await cache.close()
    const dir = tempDir('orch-cache-redis-')
    try {
      const yaml = [
        'infrastructure_system:',
        '  distributed_simulation:',
        '    enabled: true',
        '    event_bus_type: redis',
        `    redis_url: ${server.url}`,
        `    redis_prefix: ${prefix}`,
        '  llm_orchestration:',
        '    caching:',
        '      cache_backend: redis',
        '',
      ].join('\n')
      await Bun.write(`${dir.path}/orch.yaml`, yaml)
      const stats = await runCli(['cache', 'stats', '--json'], { cwd: dir.path })
      expect(stats.code).toBe(0)
      expect(stats.json()).toMatchObject({ backend: 'redis', url: server.url, prefix, entries: 2, sets: 2, hits: 1 })
      const cleared = await runCli(['cache', 'clear', '--model', 'llama3.2', '--json'], { cwd: dir.path })
      expect(cleared.json()).toMatchObject({ removed: 1, prefix })
      const text = await runCli(['cache', 'stats'], { cwd: dir.path })
      expect(text.stdout).toContain(`(prefix ${prefix}) (redis,`)
      expect(text.stdout).toMatch(/entries +1 /)
    } finally {
      dir.cleanup()
    }
  }, 20_000)
})
