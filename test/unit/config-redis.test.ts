/**
 * The Redis keys of infrastructure_system.distributed_simulation, and the checks that span keys: each value
 * set in a file, an ORCH_* variable or a flag gives the config, or E_CONFIG (exit 2) naming the key.
 */
import { describe, expect, test } from 'bun:test'
import { resolveConfig, validateConfigFile } from '../../src/config/load.ts'
import { defaultConfig, type OrchConfig } from '../../src/config/schema.ts'
import { ExitCode, formatIssue } from '../../src/core/errors.ts'
import { configError, configWorkdirs } from '../helpers/config-files.ts'

const workdir = configWorkdirs('orch-config-redis-')
const D = 'infrastructure_system.distributed_simulation'
const CACHE = 'infrastructure_system.llm_orchestration.caching.cache_backend'
const PASSWORD =
  'a password does not belong in the config file: put it in the environment variable named by redis_password_env (default ORCH_REDIS_PASSWORD)'
const URL_EXPECTED = 'expected a redis:// or rediss:// (TLS) URL: redis://[user@]host[:port][/db]'

type Distributed = OrchConfig['infrastructure_system']['distributed_simulation']

/** A file with `enabled: true, event_bus_type: redis` and these keys in distributed_simulation. */
function cluster(keys: Record<string, unknown>): string {
  const lines = Object.entries({ enabled: true, event_bus_type: 'redis', ...keys }).map(
    ([key, value]) => `    ${key}: ${JSON.stringify(value)}`,
  )
  return ['infrastructure_system:', '  distributed_simulation:', ...lines, ''].join('\n')
}

const resolved = (yaml: string, env: Record<string, string> = {}): Distributed =>
  resolveConfig({ cwd: workdir({ 'orch.yaml': yaml }), env }).config.infrastructure_system.distributed_simulation

/** Every issue of the file as `path: message`, by the resolver; validate must agree. */
function refused(yaml: string, env: Record<string, string> = {}): string[] {
  const cwd = workdir({ 'orch.yaml': yaml })
  const error = configError({ cwd, env })
  expect(error.code).toBe('E_CONFIG')
  expect(error.exitCode).toBe(ExitCode.usage)
  if (Object.keys(env).length === 0) expect(validateConfigFile('orch.yaml', { cwd })).toEqual(error.issues)
  return error.issues.map((i) => `${i.path}: ${i.message}`)
}

describe('defaults', () => {
  test('one machine: local_memory, not enabled, localhost:6379, ORCH_REDIS_PASSWORD, prefix orch, no URL', () => {
    expect(defaultConfig().infrastructure_system.distributed_simulation).toMatchObject({
      enabled: false,
      event_bus_type: 'local_memory',
      redis_url: '',
      redis_host: 'localhost',
      redis_port: 6379,
      redis_password_env: 'ORCH_REDIS_PASSWORD',
      redis_prefix: 'orch',
    })
  })
})

describe('event_bus_type and enabled', () => {
  test('enabled: true with event_bus_type: redis is a cluster', () => {
    expect(resolved(cluster({}))).toMatchObject({ enabled: true, event_bus_type: 'redis' })
    const viaEnv = resolveConfig({ cwd: workdir(), env: { ORCH_EVENT_BUS: 'redis', ORCH_DISTRIBUTED_ENABLED: 'true' } })
    expect(viaEnv.config.infrastructure_system.distributed_simulation).toMatchObject({ enabled: true, event_bus_type: 'redis' })
  })

  test('enabled: true with local_memory is refused at enabled, naming event_bus_type, at its file:line', () => {
    const yaml = 'infrastructure_system:\n  distributed_simulation:\n    enabled: true\n'
    const cwd = workdir({ 'orch.yaml': yaml })
    const [issue] = configError({ cwd, env: {} }).issues
    expect(issue && formatIssue(issue)).toBe(
      `orch.yaml:3:5: ${D}.enabled: coordination over several machines needs event_bus_type: redis (event_bus_type is local_memory); set event_bus_type: redis, or enabled: false for one machine`,
    )
  })

  test('event_bus_type: redis without enabled: true is refused at event_bus_type, naming enabled', () => {
    const message = `${D}.event_bus_type: set distributed_simulation.enabled: true to run over Redis (enabled is false), or use event_bus_type: local_memory for one machine`
    expect(refused('infrastructure_system:\n  distributed_simulation:\n    event_bus_type: redis\n')).toEqual([message])
    expect(refused(cluster({ enabled: false }))).toEqual([message])
    // The variable alone is refused the same way, naming the variable.
    const error = configError({ cwd: workdir(), env: { ORCH_EVENT_BUS: 'redis' } })
    expect(error.message).toBe(`${message} (from ORCH_EVENT_BUS)`)
  })

  test('kafka is still not available', () => {
    expect(refused(cluster({ event_bus_type: 'kafka' }))[0]).toContain('"kafka" is not available in this version')
  })
})

describe('redis_url', () => {
  test.each([
    ['redis://redis.internal:6379', 'redis://redis.internal:6379'],
    ['rediss://redis.internal:6380/2', 'rediss://redis.internal:6380/2'],
    ['redis://orch@10.0.0.5', 'redis://orch@10.0.0.5'],
    ['redis://[::1]:6379/0', 'redis://[::1]:6379/0'],
    ['', ''],
  ])('%p is accepted as written', (url, expected) => {
    expect(resolved(cluster({ redis_url: url })).redis_url).toBe(expected)
  })

  test.each([
    ['http://redis.internal:6379'],
    ['redis.internal:6379'],
    ['REDIS://redis.internal'],
    ['redis://'],
    ['redis://redis.internal/cache'],
  ])('%p is refused with what was expected', (url) => {
    expect(refused(cluster({ redis_url: url }))).toEqual([`${D}.redis_url: ${URL_EXPECTED}, got ${JSON.stringify(url)}`])
  })

  test('a number is refused as not a URL', () => {
    expect(refused(cluster({ redis_url: 6379 }))).toEqual([`${D}.redis_url: ${URL_EXPECTED}, got 6379`])
  })

  test.each([
    ['redis://:s3cret@redis.internal:6379'],
    ['redis://orch:s3cret@redis.internal'],
    ['rediss://redis.internal/0?password=s3cret'],
  ])('%p (a password) is refused, and the password is not repeated', (url) => {
    const issues = refused(cluster({ redis_url: url }))
    expect(issues).toEqual([`${D}.redis_url: ${PASSWORD}`])
    const error = configError({ cwd: workdir(), env: { ORCH_REDIS_URL: url, ORCH_EVENT_BUS: 'redis', ORCH_DISTRIBUTED_ENABLED: '1' } })
    expect(error.message).toBe(`${D}.redis_url: ${PASSWORD} (from ORCH_REDIS_URL)`)
    expect(JSON.stringify(error.toJSON())).not.toContain('s3cret')
  })
})

describe('redis_host and redis_port', () => {
  test('accepted, from the file or the variables', () => {
    expect(resolved(cluster({ redis_host: 'redis.internal', redis_port: 6380 }))).toMatchObject({
      redis_host: 'redis.internal',
      redis_port: 6380,
    })
    expect(resolved(cluster({}), { ORCH_REDIS_HOST: '::1', ORCH_REDIS_PORT: '7000' })).toMatchObject({
      redis_host: '::1',
      redis_port: 7000,
    })
  })

  test('an empty host and a port out of range are refused', () => {
    expect(refused(cluster({ redis_host: '', redis_port: 0 }))).toEqual([
      `${D}.redis_host: expected a non-empty string, got ""`,
      `${D}.redis_port: expected an integer 1-65535, got 0`,
    ])
  })
})

describe('redis_password_env', () => {
  test('a variable name, or "" for no password', () => {
    expect(resolved(cluster({ redis_password_env: 'REDIS_PASSWORD' })).redis_password_env).toBe('REDIS_PASSWORD')
    expect(resolved(cluster({ redis_password_env: '' })).redis_password_env).toBe('')
    expect(resolved(cluster({}), { ORCH_REDIS_PASSWORD_ENV: '_PW2' }).redis_password_env).toBe('_PW2')
  })

  test.each([['s3cret pass'], ['1PASSWORD'], ['REDIS-PASSWORD']])('%p (not a variable name) is refused', (value) => {
    expect(refused(cluster({ redis_password_env: value }))).toEqual([
      `${D}.redis_password_env: expected the name of an environment variable ([A-Za-z_][A-Za-z0-9_]*), or "" for none, got ${JSON.stringify(value)}`,
    ])
  })

  test('ORCH_REDIS_PASSWORD, which the default names, is a known variable (no "unknown variable" warning)', () => {
    const { warnings } = resolveConfig({ cwd: workdir(), env: { ORCH_REDIS_PASSWORD: 'pw' } })
    expect(warnings).toEqual([])
    expect(resolveConfig({ cwd: workdir(), env: { ORCH_REDIS_PASWORD: 'pw' } }).warnings[0]).toContain('did you mean ORCH_REDIS_PASSWORD?')
  })
})

describe('redis_prefix', () => {
  test('letters, digits, "_", "." and "-"', () => {
    expect(resolved(cluster({ redis_prefix: 'prod-eu.1_a' })).redis_prefix).toBe('prod-eu.1_a')
    expect(resolved(cluster({}), { ORCH_REDIS_PREFIX: 'staging' }).redis_prefix).toBe('staging')
  })

  test.each([[''], ['orch:prod'], ['with space'], ['orch*']])('%p is refused', (value) => {
    expect(refused(cluster({ redis_prefix: value }))).toEqual([
      `${D}.redis_prefix: expected a non-empty prefix of letters, digits, "_", "." or "-", got ${JSON.stringify(value)}`,
    ])
  })
})

describe('cache_backend: redis', () => {
  const cache = (bus: string) =>
    [
      'infrastructure_system:',
      '  distributed_simulation:',
      `    enabled: ${bus === 'redis'}`,
      `    event_bus_type: ${bus}`,
      '  llm_orchestration:',
      '    caching:',
      '      cache_backend: redis',
      '',
    ].join('\n')

  test('accepted on the Redis bus', () => {
    const cwd = workdir({ 'orch.yaml': cache('redis') })
    expect(resolveConfig({ cwd, env: {} }).config.infrastructure_system.llm_orchestration.caching.cache_backend).toBe('redis')
  })

  test('refused at cache_backend without it, naming event_bus_type, at its file:line', () => {
    const cwd = workdir({ 'orch.yaml': cache('local_memory') })
    const error = configError({ cwd, env: {} })
    expect(error.issues.map(formatIssue)).toEqual([
      `orch.yaml:7:7: ${CACHE}: cache_backend: redis needs infrastructure_system.distributed_simulation.event_bus_type: redis (it is "local_memory"); use sqlite or memory on one machine`,
    ])
    expect(validateConfigFile('orch.yaml', { cwd })).toEqual(error.issues)
    expect(configError({ cwd: workdir(), env: { ORCH_CACHE_BACKEND: 'redis' } }).message).toEndWith('(from ORCH_CACHE_BACKEND)')
  })

  test('sqlite and memory need no Redis', () => {
    for (const backend of ['sqlite', 'memory']) {
      const cwd = workdir({ 'orch.yaml': `infrastructure_system: {llm_orchestration: {caching: {cache_backend: ${backend}}}}\n` })
      expect<string>(resolveConfig({ cwd, env: {} }).config.infrastructure_system.llm_orchestration.caching.cache_backend).toBe(backend)
    }
  })
})
