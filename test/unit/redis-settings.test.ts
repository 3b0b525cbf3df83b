/** Where a cluster's Redis is, from the config and the environment: redisSettings and usesRedis. */
import { describe, expect, test } from 'bun:test'
import { validateData } from '../../src/config/validate.ts'
import { redisSettings, usesRedis } from '../../src/store/redis.ts'

/** A validated config with `enabled: true, event_bus_type: redis` and these distributed_simulation keys. */
function config(keys: Record<string, unknown> = {}) {
  const { config, issues } = validateData({
    infrastructure_system: { distributed_simulation: { enabled: true, event_bus_type: 'redis', ...keys } },
  })
  expect(issues).toEqual([])
  return config as NonNullable<typeof config>
}

describe('redisSettings', () => {
  test('defaults: redis://localhost:6379, the password from ORCH_REDIS_PASSWORD, prefix orch', () => {
    expect(redisSettings(config(), { ORCH_REDIS_PASSWORD: 'pw' })).toEqual({
      url: 'redis://localhost:6379',
      password: 'pw',
      prefix: 'orch',
    })
  })

  test('redis_url wins over redis_host and redis_port', () => {
    const settings = redisSettings(config({ redis_url: 'rediss://orch@r.internal:6380/3', redis_host: 'other', redis_port: 1 }), {})
    expect(settings.url).toBe('rediss://orch@r.internal:6380/3')
  })

  test('without redis_url: redis://redis_host:redis_port, an IPv6 host in brackets', () => {
    expect(redisSettings(config({ redis_host: 'r.internal', redis_port: 7001 }), {}).url).toBe('redis://r.internal:7001')
    expect(redisSettings(config({ redis_host: '::1', redis_port: 6379 }), {}).url).toBe('redis://[::1]:6379')
    expect(redisSettings(config({ redis_host: 'fd00::5' }), {}).url).toBe('redis://[fd00::5]:6379')
    expect(redisSettings(config({ redis_host: '[::1]' }), {}).url).toBe('redis://[::1]:6379')
  })

  test('the password: from the variable redis_password_env names; unset or empty: none', () => {
    const named = config({ redis_password_env: 'CLUSTER_PW' })
    expect(redisSettings(named, { CLUSTER_PW: 's3cret', ORCH_REDIS_PASSWORD: 'not this one' }).password).toBe('s3cret')
    expect(redisSettings(named, { ORCH_REDIS_PASSWORD: 'not this one' }).password).toBeUndefined()
    expect(redisSettings(named, { CLUSTER_PW: '' }).password).toBeUndefined()
    expect(redisSettings(config({ redis_password_env: '' }), { ORCH_REDIS_PASSWORD: 'pw' }).password).toBeUndefined()
  })

  test('the prefix as configured', () => {
    expect(redisSettings(config({ redis_prefix: 'prod-eu' }), {}).prefix).toBe('prod-eu')
  })
})

describe('usesRedis', () => {
  test('only with event_bus_type: redis', () => {
    expect(usesRedis(config())).toBe(true)
    const { config: local } = validateData({})
    expect(usesRedis(local as NonNullable<typeof local>)).toBe(false)
  })
})
