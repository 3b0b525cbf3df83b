/** What orch doctor reads from a real redis-server (needs redis-server: npm run test:system). */
import { afterEach, describe, expect, test } from 'bun:test'
import { validateData } from '../../src/config/validate.ts'
import { checkRedis } from '../../src/doctor/checks.ts'
import { gatherRedis } from '../../src/doctor/run.ts'
import { type RedisServer, startRedis } from '../helpers/redis-server.ts'

const cleanups: Array<() => void | Promise<void>> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup()
})

describe('redis edge', () => {
  /** A validated cluster config pointing at `url`, with these distributed_simulation keys. */
  const cluster = (url: string, keys: Record<string, unknown> = {}) => {
    const { config, issues } = validateData({
      infrastructure_system: { distributed_simulation: { enabled: true, event_bus_type: 'redis', redis_url: url, ...keys } },
    })
    expect(issues).toEqual([])
    return config as NonNullable<typeof config>
  }
  const cli = (redis: RedisServer, ...args: string[]) => {
    const r = Bun.spawnSync(['redis-cli', '-p', String(redis.port), ...args])
    expect(r.stdout.toString().trim()).toBe('OK')
  }

  test('a real redis-server: its version, eviction policy and persistence, read with CONFIG GET', async () => {
    const redis = await startRedis({ aof: true, settings: { 'maxmemory-policy': 'allkeys-lru', maxmemory: '1gb' } })
    cleanups.push(() => redis.stop())
    const facts = await gatherRedis(cluster(redis.url), {})
    expect(facts).toMatchObject({
      url: redis.url,
      reachable: true,
      settings: { maxmemoryPolicy: 'allkeys-lru', maxmemory: 1024 ** 3, appendonly: 'yes', appendfsync: 'always' },
    })
    expect(facts.version).toMatch(/^\d+\.\d+\.\d+/)
    expect(checkRedis(facts).find((f) => f.id === 'redis.eviction')?.status).toBe('error')
  })

  test('a password: none sent (NOAUTH), a wrong one (WRONGPASS), the right one from the variable redis_password_env names', async () => {
    const redis = await startRedis()
    cleanups.push(() => redis.stop())
    cli(redis, 'CONFIG', 'SET', 'requirepass', 'pw-1')
    const config = cluster(redis.url, { redis_password_env: 'DOCTOR_TEST_REDIS_PW' })
    const none = await gatherRedis(config, {})
    expect(none).toMatchObject({ reachable: false, passwordEnv: { name: 'DOCTOR_TEST_REDIS_PW', set: false } })
    expect(none.error).toStartWith('NOAUTH')
    const started = Date.now()
    const wrong = await gatherRedis(config, { DOCTOR_TEST_REDIS_PW: 'nope' })
    expect(wrong.error).toStartWith('WRONGPASS')
    // A refused password is reported at once, not after the connection timeout.
    expect(Date.now() - started).toBeLessThan(1500)
    expect(checkRedis(wrong)[0]?.fix).toContain('the password in DOCTOR_TEST_REDIS_PW is refused')
    expect(await gatherRedis(config, { DOCTOR_TEST_REDIS_PW: 'pw-1' })).toMatchObject({ reachable: true, passwordEnv: { set: true } })
  })

  test('CONFIG refused (as managed services do): reachable, the settings unknown', async () => {
    const redis = await startRedis()
    cleanups.push(() => redis.stop())
    cli(redis, 'ACL', 'SETUSER', 'default', '-config')
    const facts = await gatherRedis(cluster(redis.url), {})
    expect(facts.reachable).toBe(true)
    expect(facts.settings).toBeUndefined()
    expect(facts.configError).toContain('NOPERM')
  })

  test('nothing listening: unreachable within the timeout, with the connection error', async () => {
    const redis = await startRedis()
    await redis.stop()
    const started = Date.now()
    const facts = await gatherRedis(cluster(redis.url), {}, 500)
    expect(Date.now() - started).toBeLessThan(2000)
    expect(facts).toMatchObject({ reachable: false, error: `connect ECONNREFUSED 127.0.0.1:${redis.port}` })
  })
})
