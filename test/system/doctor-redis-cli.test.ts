/** orch doctor against a real redis-server (needs redis-server: npm run test:system). */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { backend, project, serverPort } from '../helpers/doctor-project.ts'
import { type FakeServer, startFakeOllama } from '../helpers/fake-ollama.ts'
import { type RedisServer, type RedisServerOptions, startRedis } from '../helpers/redis-server.ts'

let ollama: FakeServer
beforeAll(async () => {
  ollama = await startFakeOllama({ models: ['llama3.2', 'nomic-embed-text'] })
})
afterAll(() => ollama.stop())

describe('orch doctor with Redis (event_bus_type: redis)', () => {
  const servers: RedisServer[] = []
  afterAll(async () => {
    for (const server of servers) await server.stop()
  })
  const redis = async (options: RedisServerOptions = {}) => {
    const server = await startRedis(options)
    servers.push(server)
    return server
  }
  const cluster = (url: string) =>
    [
      serverPort(),
      'backends:',
      backend('local', ollama.url),
      'infrastructure_system:',
      '  distributed_simulation:',
      '    enabled: true',
      '    event_bus_type: redis',
      `    redis_url: ${url}`,
      '',
    ].join('\n')
  type Findings = { ok: boolean; findings: Array<{ id: string; status: string; detail: string; fix?: string }> }

  test('AOF on, noeviction: every Redis check ok, exit 0', async () => {
    const server = await redis({ aof: true })
    const r = await project(cluster(server.url)).run()
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(new RegExp(`\\nok\\s+redis\\s+redis://127\\.0\\.0\\.1:${server.port} reachable\\n`))
    expect(r.stdout).toMatch(/\nok\s+redis version\s+Redis \d+\.\d+\.\d+\n/)
    expect(r.stdout).toMatch(/\nok\s+redis eviction\s+maxmemory-policy noeviction\n/)
    expect(r.stdout).toMatch(/\nok\s+redis persistence\s+appendonly yes, appendfsync always: no acknowledged write is lost\n/)
  })

  test('AOF off and allkeys-lru: warnings with the fixes (exit 0), in the text and in --json', async () => {
    const server = await redis({ settings: { 'maxmemory-policy': 'allkeys-lru' } })
    const p = project(cluster(server.url))
    const text = await p.run()
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(
      /\nwarn\s+redis persistence\s+appendonly no: a Redis restart loses queued tasks accepted since the last snapshot\n/,
    )
    expect(text.stdout).toContain('fix: set `appendonly yes` (and `appendfsync everysec`, or `always` for no loss)')
    expect(text.stdout).toContain('fix: `redis-cli CONFIG SET maxmemory-policy noeviction`')
    const json = await p.run(['--json'])
    const { ok, findings } = json.json<Findings>()
    expect(ok).toBe(true)
    const redisFindings = findings.filter((f) => f.id.startsWith('redis'))
    expect(redisFindings.map((f) => [f.id, f.status])).toEqual([
      ['redis', 'ok'],
      ['redis.version', 'ok'],
      ['redis.eviction', 'warning'],
      ['redis.aof', 'warning'],
    ])
    expect(redisFindings[2]?.detail).toBe(
      'maxmemory-policy allkeys-lru (no maxmemory set): once a maxmemory is set, Redis may evict queued tasks under memory pressure',
    )
  })

  test('nothing listening: an error naming the URL and the cause, exit 1', async () => {
    const server = await redis()
    await server.halt({ kill: true })
    const r = await project(cluster(server.url)).run(['--json'])
    expect(r.code).toBe(1)
    const redisFindings = r.json<Findings>().findings.filter((f) => f.id.startsWith('redis'))
    expect(redisFindings).toEqual([
      {
        id: 'redis',
        status: 'error',
        title: 'redis',
        detail: `${server.url} unreachable: connect ECONNREFUSED 127.0.0.1:${server.port}`,
        fix: 'start Redis (`redis-server`), or correct infrastructure_system.distributed_simulation.redis_url (or redis_host / redis_port)',
      },
    ] as unknown as Findings['findings'])
  })

  test('a password it wants and was not given: the fix names ORCH_REDIS_PASSWORD, exit 1', async () => {
    const server = await redis()
    Bun.spawnSync(['redis-cli', '-p', String(server.port), 'CONFIG', 'SET', 'requirepass', 'doctor-pw'])
    const r = await project(cluster(server.url)).run()
    expect(r.code).toBe(1)
    expect(r.stdout).toContain(`${server.url} refused orch: NOAUTH Authentication required.`)
    expect(r.stdout).toContain(
      'fix: export ORCH_REDIS_PASSWORD=<password> before starting orch (redis_password_env names ORCH_REDIS_PASSWORD)',
    )
    expect(r.stdout).not.toContain('doctor-pw')
  })
})
