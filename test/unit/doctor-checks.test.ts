import { describe, expect, test } from 'bun:test'
import {
  type BackendFacts,
  checkBackend,
  checkBatchLocks,
  checkConfig,
  checkDisk,
  checkExecutable,
  checkGpus,
  checkHome,
  checkOpenFiles,
  checkPort,
  checkRedis,
  checkRuntime,
  type DoctorFacts,
  GiB,
  MiB,
  planDoctor,
  type RedisFacts,
} from '../../src/doctor/checks.ts'
import { readOpenFileLimit } from '../../src/doctor/run.ts'
import type { Gpu } from '../../src/pool/gpu.ts'

const H100: Gpu = { index: 0, name: 'NVIDIA H100', memory_total_mib: 81559, memory_used_mib: 0, utilization_pct: 0 }

describe('batch locks', () => {
  const lock = (name: string, age: number, stale: boolean, pid: number | null = null) => ({
    name,
    path: `/in/${name}/.lock`,
    locked_at: '2026-11-24T00:00:00.000Z',
    age_seconds: age,
    pid,
    stale,
  })

  test('no lock, or only young ones: one ok finding', () => {
    expect(checkBatchLocks({ inputsRoot: '/in', staleLockSeconds: 3600, locks: [] })).toEqual([
      { id: 'batch.locks', status: 'ok', title: 'batch locks', detail: '/in: no batch is locked', fix: undefined },
    ])
    const young = checkBatchLocks({ inputsRoot: '/in', staleLockSeconds: 3600, locks: [lock('a', 10, false)] })
    expect(young.map((f) => [f.status, f.detail])).toEqual([['ok', '/in: 1 lock(s), none older than 3600 s']])
  })

  test('one warning per stale lock, with its age, pid and the file to remove', () => {
    const findings = checkBatchLocks({
      inputsRoot: '/in',
      staleLockSeconds: 3600,
      locks: [lock('a', 10, false), lock('b', 7500, true, 42), lock('c', 3601, true)],
    })
    expect(findings.map((f) => [f.status, f.detail, f.fix])).toEqual([
      [
        'warning',
        'b: .lock is 2h 05m old (batch.stale_lock_seconds: 3600), written by pid 42; no tick will process this batch while it is there',
        'if no orch batch tick is still running on it: rm /in/b/.lock',
      ],
      [
        'warning',
        'c: .lock is 1h 00m old (batch.stale_lock_seconds: 3600); no tick will process this batch while it is there',
        'if no orch batch tick is still running on it: rm /in/c/.lock',
      ],
    ])
  })

  test('an unreadable inputs_root is a warning, not a crash', () => {
    const [finding] = checkBatchLocks({ inputsRoot: '/in', staleLockSeconds: 1, locks: [], error: 'EACCES' })
    expect(finding?.status).toBe('warning')
    expect(finding?.detail).toBe('cannot read /in: EACCES')
  })
})

describe('runtime', () => {
  test('ok on Bun >= 1.1, error with the fix below it or off Bun', () => {
    expect(checkRuntime('1.4.5')).toMatchObject({ status: 'ok', detail: 'Bun 1.4.5' })
    expect(checkRuntime('1.1.0').status).toBe('ok')
    expect(checkRuntime('1.0.36')).toMatchObject({ status: 'error', fix: 'upgrade Bun: `bun upgrade`' })
    expect(checkRuntime(undefined).status).toBe('error')
  })
})

describe('config', () => {
  test('valid: one ok finding naming the files', () => {
    expect(checkConfig({ files: ['orch.yaml'], issues: [], warnings: [] })).toEqual([
      { id: 'config', status: 'ok', title: 'config', detail: 'valid: orch.yaml' },
    ])
  })

  test('one error per issue, with key path and file:line; resolver warnings become warnings', () => {
    const findings = checkConfig({
      files: ['orch.yaml'],
      issues: [
        { path: 'server.port', message: 'expected an integer 1-65535, got 99999', file: 'orch.yaml', line: 2, column: 3 },
        { path: 'pools[0].pool_size', message: 'expected a positive integer', file: 'orch.yaml', line: 5, column: 5 },
      ],
      warnings: ['unknown variable ORCH_PROT'],
    })
    expect(findings.map((f) => f.status)).toEqual(['error', 'error', 'warning'])
    expect(findings[0]?.detail).toBe('orch.yaml:2:3: server.port: expected an integer 1-65535, got 99999')
    expect(findings[0]?.fix).toContain('correct `server.port` in orch.yaml line 2')
    expect(findings[1]?.title).toBe('config pools[0].pool_size')
  })
})

describe('state directory and database', () => {
  test('writable, integrity ok', () => {
    const findings = checkHome({ path: '/h', exists: true, writable: true, integrity: ['ok'] })
    expect(findings.map((f) => f.status)).toEqual(['ok', 'ok'])
    expect(checkHome({ path: '/h', exists: false, writable: true })[1]?.detail).toContain('no state.db yet')
  })

  test('not writable, or a corrupt database: errors with fixes', () => {
    const [dir] = checkHome({ path: '/h', exists: true, writable: false, error: 'EACCES' })
    expect(dir).toMatchObject({ status: 'error', id: 'state-dir' })
    expect(dir?.fix).toContain('--home')
    const [, corrupt] = checkHome({
      path: '/h',
      exists: true,
      writable: true,
      integrity: ['*** in database main ***', 'Page 3 is never used'],
    })
    expect(corrupt).toMatchObject({ status: 'error', id: 'state-db' })
    expect(corrupt?.fix).toContain('mv /h/state.db /h/state.db.bad')
    const [, unreadable] = checkHome({ path: '/h', exists: true, writable: true, dbError: 'file is not a database' })
    expect(unreadable?.status).toBe('error')
  })
})

describe('ports', () => {
  const serve = { owner: 'serve', key: 'server.port', host: '127.0.0.1', port: 9097 }
  test('free, or held by orch itself: ok', () => {
    expect(checkPort({ ...serve, state: 'free' }).status).toBe('ok')
    expect(checkPort({ ...serve, state: 'busy', orchPid: 42 })).toMatchObject({
      status: 'ok',
      detail: '127.0.0.1:9097 is held by orch (pid 42)',
    })
  })

  test("serve's port busy with another program: error; a pool's: warning (next free port)", () => {
    const busy = checkPort({ ...serve, state: 'busy', error: 'EADDRINUSE' })
    expect(busy.status).toBe('error')
    expect(busy.fix).toContain('server.port')
    const pool = checkPort({ owner: 'pool gpu', key: 'pools[0].port', host: '127.0.0.1', port: 11500, state: 'busy' })
    expect(pool).toMatchObject({ status: 'warning', id: 'port.pool.gpu' })
  })
})

describe('backends', () => {
  const base: BackendFacts = { name: 'local', index: 0, type: 'ollama', url: 'http://x', reachable: true, available: [], wanted: [] }
  test('reachable, configured models present (llama3.2 = llama3.2:latest)', () => {
    const findings = checkBackend({ ...base, available: ['llama3.2:latest', 'qwen3:8b'], wanted: ['llama3.2', 'qwen3:8b'] })
    expect(findings).toHaveLength(1)
    expect(findings[0]?.status).toBe('ok')
  })

  test('unreachable: error with the fix', () => {
    const [f] = checkBackend({ ...base, reachable: false, error: 'ECONNREFUSED' })
    expect(f).toMatchObject({ status: 'error', detail: 'http://x unreachable: ECONNREFUSED' })
    expect(f?.fix).toContain('ollama serve')
    expect(f?.fix).toContain('backends[0].url')
  })

  test('refused (401/403): the fix is about the token, not about starting the server', () => {
    const refused = { ...base, reachable: false, unauthorized: true, error: 'local: HTTP 401 unauthorized' }
    const [none] = checkBackend(refused)
    expect(none).toMatchObject({ status: 'error', detail: 'http://x refused orch: local: HTTP 401 unauthorized' })
    expect(none?.fix).toBe('set backends[0].api_key_env to the name of a variable holding its token, and export that variable')
    const [unset] = checkBackend({ ...refused, apiKeyEnv: { name: 'PROXY_KEY', set: false } })
    expect(unset?.fix).toBe('export PROXY_KEY=<token> before starting orch (backends[0].api_key_env names it)')
    const [wrong] = checkBackend({ ...refused, apiKeyEnv: { name: 'PROXY_KEY', set: true } })
    expect(wrong?.fix).toBe('the token in PROXY_KEY is refused: replace it with a valid one')
  })

  test('a configured model missing: one error per model with the pull command', () => {
    const findings = checkBackend({ ...base, available: ['llama3.2:latest'], wanted: ['llama3.2', 'mistral'] })
    expect(findings.map((f) => f.status)).toEqual(['ok', 'error'])
    expect(findings[1]?.fix).toContain('`ollama pull mistral`')
  })
})

describe('programs', () => {
  test('ollama on PATH with its version: ok; missing: error with install fix', () => {
    expect(checkExecutable({ program: 'ollama', pools: ['gpu'], path: '/usr/bin/ollama', version: 'version 0.12.3' }).detail).toBe(
      '/usr/bin/ollama, version 0.12.3',
    )
    const missing = checkExecutable({ program: 'ollama', pools: ['a', 'b'], path: undefined })
    expect(missing).toMatchObject({ status: 'error', detail: 'ollama not found on PATH (needed by pools a, b)' })
    expect(missing.fix).toContain('https://ollama.com/download')
    expect(checkExecutable({ program: 'llama-server', pools: ['c'] }).status).toBe('error')
  })
})

describe('GPUs', () => {
  test('GPUs detected and assignments valid: ok, listing where workers go', () => {
    const [f, ...rest] = checkGpus({ detection: { available: true, gpus: [H100] }, pools: [{ name: 'llm', pool_size: 2, gpus: [0] }] })
    expect(rest).toEqual([])
    expect(f?.status).toBe('ok')
    expect(f?.detail).toContain('llm-1→0, llm-2→0')
  })

  test('an assigned index that does not exist: error', () => {
    const findings = checkGpus({ detection: { available: true, gpus: [H100] }, pools: [{ name: 'llm', pool_size: 1, gpus: [0, 3] }] })
    expect(findings[1]).toMatchObject({ status: 'error', id: 'gpus.llm' })
    expect(findings[1]?.detail).toContain('GPU index 3 does not exist')
  })

  test('GPUs configured but none detected: error', () => {
    const [f] = checkGpus({
      detection: { available: false, reason: 'nvidia-smi not found' },
      pools: [{ name: 'llm', pool_size: 1, gpus: [0] }],
    })
    expect(f?.status).toBe('error')
    expect(f?.fix).toContain('nvidia-smi')
  })

  test('no GPU and nothing assigned: CPU-only (a warning when pools would run on it)', () => {
    const cpu = { available: false as const, reason: 'nvidia-smi not found on PATH (no NVIDIA driver): workers run CPU-only' }
    expect(checkGpus({ detection: cpu, pools: [] })[0]).toMatchObject({ status: 'ok', detail: cpu.reason })
    expect(checkGpus({ detection: cpu, pools: [{ name: 'p', pool_size: 1 }] })[0]?.status).toBe('warning')
  })
})

describe('redis', () => {
  const healthy: RedisFacts = {
    url: 'redis://r:6379',
    passwordEnv: { name: 'ORCH_REDIS_PASSWORD', set: false },
    reachable: true,
    version: '7.2.4',
    settings: { maxmemoryPolicy: 'noeviction', maxmemory: 0, appendonly: 'yes', appendfsync: 'everysec' },
  }
  const byId = (facts: Partial<RedisFacts>) => new Map(checkRedis({ ...healthy, ...facts }).map((f) => [f.id, f]))

  test('healthy: reachable, version, noeviction, AOF, all ok', () => {
    const findings = checkRedis(healthy)
    expect(findings.map((f) => [f.id, f.status])).toEqual([
      ['redis', 'ok'],
      ['redis.version', 'ok'],
      ['redis.eviction', 'ok'],
      ['redis.aof', 'ok'],
    ])
    expect(findings[0]?.detail).toBe('redis://r:6379 reachable')
    expect(findings[1]?.detail).toBe('Redis 7.2.4')
    expect(findings[3]?.detail).toBe('appendonly yes, appendfsync everysec: a crash loses at most about a second of writes')
  })

  test('unreachable: one error naming the URL and the cause, with the fix', () => {
    const [down, ...rest] = checkRedis({ ...healthy, reachable: false, error: 'connect ECONNREFUSED 127.0.0.1:6379' })
    expect(rest).toEqual([])
    expect(down).toMatchObject({ id: 'redis', status: 'error', detail: 'redis://r:6379 unreachable: connect ECONNREFUSED 127.0.0.1:6379' })
    expect(down?.fix).toBe(
      'start Redis (`redis-server`), or correct infrastructure_system.distributed_simulation.redis_url (or redis_host / redis_port)',
    )
  })

  test('a refused password: the fix names the variable that holds it', () => {
    const noauth = { reachable: false, error: 'NOAUTH Authentication required.' }
    expect(byId({ ...noauth }).get('redis')?.fix).toBe(
      'export ORCH_REDIS_PASSWORD=<password> before starting orch (redis_password_env names ORCH_REDIS_PASSWORD)',
    )
    const wrong = { reachable: false, error: 'WRONGPASS invalid username-password pair or user is disabled.' }
    const refused = byId({ ...wrong, passwordEnv: { name: 'CLUSTER_PW', set: true } }).get('redis')
    expect(refused?.detail).toBe('redis://r:6379 refused orch: WRONGPASS invalid username-password pair or user is disabled.')
    expect(refused?.fix).toBe('the password in CLUSTER_PW is refused: export the right one (redis_password_env names CLUSTER_PW)')
    expect(byId({ ...noauth, passwordEnv: { name: '', set: false } }).get('redis')?.fix).toContain(
      'set infrastructure_system.distributed_simulation.redis_password_env to the name of a variable holding the password',
    )
  })

  test('older than 6.2: error with the upgrade', () => {
    expect(byId({ version: '6.0.16' }).get('redis.version')).toMatchObject({
      status: 'error',
      detail: 'Redis 6.0.16 is older than 6.2.0: orch uses Lua scripts, streams with XAUTOCLAIM, and GETDEL',
      fix: 'upgrade Redis to 6.2.0 or newer',
    })
    expect(byId({ version: '6.2.0' }).get('redis.version')?.status).toBe('ok')
    expect(byId({ version: undefined }).get('redis.version')?.status).toBe('warning')
  })

  test('an evicting policy: error under a maxmemory, warning without one; the fix sets noeviction', () => {
    const limited = byId({
      settings: { ...(healthy.settings as NonNullable<RedisFacts['settings']>), maxmemoryPolicy: 'allkeys-lru', maxmemory: 1 << 30 },
    })
    expect(limited.get('redis.eviction')).toMatchObject({
      status: 'error',
      detail: `maxmemory-policy allkeys-lru with maxmemory ${1 << 30}: under memory pressure Redis evicts keys, queued tasks among them`,
    })
    expect(limited.get('redis.eviction')?.fix).toContain('redis-cli CONFIG SET maxmemory-policy noeviction')
    expect(limited.get('redis.eviction')?.fix).toContain('in redis.conf: `maxmemory-policy noeviction`')
    const unlimited = byId({ settings: { ...(healthy.settings as NonNullable<RedisFacts['settings']>), maxmemoryPolicy: 'volatile-lru' } })
    expect(unlimited.get('redis.eviction')?.status).toBe('warning')
  })

  test('AOF off: a warning that a restart loses queued tasks; fsync no: a warning; always: ok', () => {
    const settings = healthy.settings as NonNullable<RedisFacts['settings']>
    const off = byId({ settings: { ...settings, appendonly: 'no' } }).get('redis.aof')
    expect(off).toMatchObject({
      status: 'warning',
      detail: 'appendonly no: a Redis restart loses queued tasks accepted since the last snapshot',
    })
    expect(off?.fix).toStartWith('set `appendonly yes` (and `appendfsync everysec`, or `always` for no loss)')
    expect(byId({ settings: { ...settings, appendfsync: 'no' } }).get('redis.aof')?.status).toBe('warning')
    expect(byId({ settings: { ...settings, appendfsync: 'always' } }).get('redis.aof')).toMatchObject({
      status: 'ok',
      detail: 'appendonly yes, appendfsync always: no acknowledged write is lost',
    })
  })

  test('CONFIG refused (managed Redis): eviction and persistence could not be checked', () => {
    const findings = byId({ settings: undefined, configError: "NOPERM this user has no permissions to run the 'config|get' command" })
    for (const id of ['redis.eviction', 'redis.aof']) {
      expect(findings.get(id)?.status).toBe('warning')
      expect(findings.get(id)?.detail).toStartWith('could not be checked: CONFIG GET was refused (NOPERM')
    }
  })
})

describe('disk and open files', () => {
  test('free disk: ok >= 2 GiB, warning below, error below 200 MiB, warning when unknown', () => {
    expect(checkDisk({ path: '/h', freeBytes: 50 * GiB }).status).toBe('ok')
    expect(checkDisk({ path: '/h', freeBytes: 1 * GiB }).status).toBe('warning')
    const low = checkDisk({ path: '/h', freeBytes: 100 * MiB })
    expect(low).toMatchObject({ status: 'error', detail: '100 MiB free under /h (below 200 MiB)' })
    expect(low.fix).toBeDefined()
    expect(checkDisk({ path: '/h', freeBytes: undefined, error: 'ENOENT' }).status).toBe('warning')
  })

  test('open-file limit: ok >= 4096 or unlimited, warning below', () => {
    expect(checkOpenFiles(65536).status).toBe('ok')
    expect(checkOpenFiles(Number.POSITIVE_INFINITY).detail).toBe('unlimited')
    expect(checkOpenFiles(1024)).toMatchObject({ status: 'warning' })
    expect(checkOpenFiles(1024).fix).toContain('ulimit -n')
    expect(checkOpenFiles(undefined).status).toBe('ok')
  })

  test('the soft limit is read from /proc/self/limits', () => {
    const text =
      'Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n'
    expect(readOpenFileLimit(text)).toBe(1024)
    expect(readOpenFileLimit('Max open files  unlimited  unlimited  files')).toBe(Number.POSITIVE_INFINITY)
    expect(readOpenFileLimit('nothing here')).toBeUndefined()
  })
})

describe('planDoctor', () => {
  const healthy: DoctorFacts = {
    bunVersion: '1.4.5',
    config: { files: [], issues: [], warnings: [] },
    home: { path: '/h', exists: true, writable: true, integrity: ['ok'] },
    disk: { path: '/h', freeBytes: 10 * GiB },
    openFiles: 1024,
    gpus: { detection: { available: false, reason: 'none' }, pools: [] },
  }

  test('warnings do not fail; an error does; optional sections are left out', () => {
    const report = planDoctor(healthy)
    expect(report.ok).toBe(true)
    expect(report.findings.map((f) => f.id)).toEqual(['runtime', 'config', 'state-dir', 'state-db', 'disk', 'open-files', 'gpus'])
    const staleLock = { name: 'b', path: '/in/b/.lock', locked_at: '', age_seconds: 5, pid: null, stale: true }
    const locked = planDoctor({ ...healthy, batchLocks: { inputsRoot: '/in', staleLockSeconds: 1, locks: [staleLock] } })
    expect(locked.ok).toBe(true)
    expect(locked.findings.at(-1)?.id).toBe('batch.locks')
    const down = { url: 'redis://r:1', passwordEnv: { name: '', set: false }, reachable: false, error: 'ECONNREFUSED' }
    const failing = planDoctor({ ...healthy, redis: down })
    expect(failing.findings.filter((f) => f.id.startsWith('redis')).map((f) => f.status)).toEqual(['error'])
    expect(failing.ok).toBe(false)
    expect(failing.findings.filter((f) => f.status === 'error').every((f) => f.fix !== undefined)).toBe(true)
  })
})
