import { afterEach, describe, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { defaultConfig } from '../../src/config/schema.ts'
import { validateData } from '../../src/config/validate.ts'
import { checkHome, checkPort, checkRedis } from '../../src/doctor/checks.ts'
import { gatherDisk, gatherHome, gatherPorts, gatherRedis, probePort } from '../../src/doctor/run.ts'
import { openStore } from '../../src/store/db.ts'
import { tempDir } from '../helpers/cli.ts'
import { type RedisServer, startRedis } from '../helpers/redis-server.ts'

const cleanups: Array<() => void | Promise<void>> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup()
})

function dir(): string {
  const d = tempDir('orch-doctor-run-')
  cleanups.push(d.cleanup)
  return d.path
}

/** A TCP server on a free loopback port that answers every chunk with `reply` (or stays silent). */
async function tcpServer(reply: string | undefined): Promise<number> {
  const server: Server = createServer((socket) => {
    socket.on('data', () => {
      if (reply !== undefined) socket.write(reply)
    })
    socket.on('error', () => {})
  })
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
  cleanups.push(() => new Promise<void>((done) => server.close(() => done())))
  const address = server.address()
  if (!address || typeof address === 'string') throw new Error('no port')
  return address.port
}

describe('state directory edge', () => {
  test('a fresh directory is writable and has no database; a healthy state.db passes integrity_check', () => {
    const home = join(dir(), 'home')
    expect(checkHome(gatherHome(home)).map((f) => f.status)).toEqual(['ok', 'ok'])
    openStore(home).close()
    const facts = gatherHome(home)
    expect(facts.integrity).toEqual(['ok'])
    expect(checkHome(facts).map((f) => f.status)).toEqual(['ok', 'ok'])
  })

  test('a state directory that is a file is not writable; a state.db that is not a database is an error', () => {
    const base = dir()
    const file = join(base, 'not-a-dir')
    writeFileSync(file, 'x')
    expect(gatherHome(file).writable).toBe(false)
    writeFileSync(join(base, 'state.db'), 'this is not sqlite, not at all, not even a little bit'.repeat(100))
    const facts = gatherHome(base)
    expect(facts.dbError ?? facts.integrity?.join()).toBeDefined()
    expect(checkHome(facts)[1]?.status).toBe('error')
  })

  test('free disk is measured under the nearest existing directory', () => {
    const base = dir()
    const disk = gatherDisk(join(base, 'a', 'b'))
    expect(disk.path).toBe(base)
    expect(disk.freeBytes).toBeGreaterThan(0)
  })
})

describe('ports edge', () => {
  test('a free port, a busy one, and one held by the orch serve named in serve.pid', async () => {
    const busy = await tcpServer(undefined)
    expect((await probePort('127.0.0.1', busy)).state).toBe('busy')
    const home = dir()
    const config = { ...defaultConfig(), server: { ...defaultConfig().server, port: busy } }
    const [foreign] = await gatherPorts(config, home)
    expect(checkPort(foreign as NonNullable<typeof foreign>).status).toBe('error')
    const info = { pid: process.pid, url: `http://127.0.0.1:${busy}`, started_at: '', version: '', argv: [] }
    writeFileSync(join(home, 'serve.pid'), JSON.stringify(info))
    const [ours] = await gatherPorts(config, home)
    expect(ours?.orchPid).toBe(process.pid)
    expect(checkPort(ours as NonNullable<typeof ours>).status).toBe('ok')
  })
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
