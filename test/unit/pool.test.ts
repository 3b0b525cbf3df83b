import { afterAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as v from 'valibot'
import { formatStatus } from '../../commands/pool.ts'
import { OrchConfigSchema, type PoolConfig } from '../../src/config/schema.ts'
import { rotateWorkerLog } from '../../src/pool/logs.ts'
import { isPortFree, pickPort } from '../../src/pool/proc.ts'
import { fillTemplate, planLaunch } from '../../src/pool/profiles.ts'
import { carriesRunMarker, type WorkerRow } from '../../src/pool/records.ts'
import { workerStatus } from '../../src/pool/status.ts'
import { startOrder } from '../../src/pool/supervisor.ts'
import { parseWatchdogArgs } from '../../src/pool/watchdog.ts'

const dirs: string[] = []
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

function pools(input: unknown[]): PoolConfig[] {
  return v.parse(OrchConfigSchema, { pools: input }).pools
}

const row: WorkerRow = {
  pool: 'gen',
  worker_id: 'gen-1',
  pid: 100,
  pgid: 100,
  port: 11500,
  gpu: '0',
  run_id: 'run-a',
  owner_pid: 42,
  state: 'healthy',
  started_at: 1_000,
  restarts: 2,
  served: 7,
  inflight: 1,
  last_heartbeat: 60_000,
  updated_at: 60_000,
}

describe('profiles', () => {
  test('command: placeholders filled in argv, gpu in CUDA_VISIBLE_DEVICES, pool env kept', () => {
    const [pool] = pools([
      {
        name: 'gen',
        profile: 'command',
        models: ['m.gguf'],
        env: { OMP_NUM_THREADS: '2' },
        command: ['srv', '--port', '{port}', '-m', '{model}', '--host={host}', 'g{gpu}'],
      },
    ]) as [PoolConfig]
    const launch = planLaunch(pool, { port: 11500, gpu: '1' })
    expect(launch.argv).toEqual(['srv', '--port', '11500', '-m', 'm.gguf', '--host=127.0.0.1', 'g1'])
    expect(launch.env).toEqual({ OMP_NUM_THREADS: '2', CUDA_VISIBLE_DEVICES: '1' })
    expect(launch.healthUrl).toBe('http://127.0.0.1:11500/health')
  })

  test('ollama: ollama serve with OLLAMA_HOST, probed at /api/tags', () => {
    const [pool] = pools([{ name: 'o' }]) as [PoolConfig]
    const launch = planLaunch(pool, { port: 11600 })
    expect(launch.argv).toEqual(['ollama', 'serve'])
    expect(launch.env).toEqual({ OLLAMA_HOST: '127.0.0.1:11600' })
    expect(launch.healthUrl).toBe('http://127.0.0.1:11600/api/tags')
  })

  test('unknown placeholders are left alone', () => {
    expect(fillTemplate('{nope}-{port}', { port: '1' })).toBe('{nope}-1')
  })
})

describe('supervisor planning', () => {
  test('pools start after the pools they depend on; a named pool pulls in its dependencies', () => {
    const list = pools([{ name: 'router', depends_on: ['a', 'b'] }, { name: 'a' }, { name: 'b', depends_on: ['a'] }, { name: 'other' }])
    expect(startOrder(list).map((p) => p.name)).toEqual(['a', 'b', 'router', 'other'])
    expect(startOrder(list, ['b']).map((p) => p.name)).toEqual(['a', 'b'])
  })

  test('pickPort: the preferred port when free, otherwise the next free one, never a taken one', () => {
    const listener = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
    try {
      expect(isPortFree(listener.port)).toBe(false)
      const next = pickPort(listener.port, new Set([listener.port + 1]))
      expect(next).toBeGreaterThan(listener.port + 1)
    } finally {
      listener.stop(true)
    }
    const chosen = pickPort(undefined, new Set())
    expect(chosen).toBeGreaterThan(0)
  })
})

describe('logs', () => {
  test('rotation: past the cap the file moves to .1 (older to .2, .3) and starts empty', () => {
    const dir = mkdtempSync(join(tmpdir(), 'orch-pool-log-'))
    dirs.push(dir)
    const path = join(dir, 'w.log')
    writeFileSync(path, 'small')
    expect(rotateWorkerLog(path, 10, 3)).toBe(false)
    writeFileSync(path, 'first generation')
    expect(rotateWorkerLog(path, 10, 3)).toBe(true)
    writeFileSync(path, 'second generation')
    expect(rotateWorkerLog(path, 10, 3)).toBe(true)
    expect(readFileSync(path, 'utf8')).toBe('')
    expect(readFileSync(`${path}.1`, 'utf8')).toBe('second generation')
    expect(readFileSync(`${path}.2`, 'utf8')).toBe('first generation')
  })
})

describe('stale-worker identification', () => {
  test("only a command line with this row's run and worker marker counts", () => {
    const ours = ['bun', 'watchdog.ts', '--parent', '42', '--run', 'run-a', '--worker', 'gen/gen-1', '--', 'srv']
    expect(carriesRunMarker(ours, row)).toBe(true)
    expect(
      carriesRunMarker(
        ours.map((a) => (a === 'run-a' ? 'run-b' : a)),
        row,
      ),
    ).toBe(false)
    expect(carriesRunMarker(['sleep', '60'], row)).toBe(false)
    expect(carriesRunMarker(undefined, row)).toBe(false)
  })

  test('watchdog arguments', () => {
    expect(parseWatchdogArgs(['--parent', '7', '--grace', '300', '--', 'srv', '--port', '1'])).toEqual({
      parent: 7,
      graceMs: 300,
      argv: ['srv', '--port', '1'],
    })
    expect(() => parseWatchdogArgs(['--parent', '7'])).toThrow('expected --')
    expect(() => parseWatchdogArgs(['--', 'srv'])).toThrow('--parent')
  })
})

describe('pool status', () => {
  test('uptime and pid for live workers; a worker whose orch is gone reads stopped', () => {
    const [live] = workerStatus([row], 61_000, () => true)
    expect(live).toMatchObject({
      id: 'gen-1',
      pid: 100,
      state: 'healthy',
      uptime_s: 60,
      restarts: 2,
      served: 7,
      last_heartbeat: '1970-01-01T00:01:00.000Z',
    })
    const [gone] = workerStatus([row], 61_000, () => false)
    expect(gone).toMatchObject({ state: 'stopped', pid: null, uptime_s: null })
    const failed = workerStatus([{ ...row, state: 'failed' }], 61_000, () => false)[0]
    expect(failed?.state).toBe('failed')
  })

  test('table', () => {
    const text = formatStatus(workerStatus([row], 61_000, () => true))
    expect(text.split('\n')[0]).toMatch(/^POOL\s+WORKER\s+PID\s+PORT\s+GPU\s+STATE\s+UPTIME\s+RESTARTS\s+SERVED\s+LAST HEARTBEAT$/)
    expect(text).toContain('gen-1')
    expect(formatStatus([])).toContain('no pool workers')
  })
})
