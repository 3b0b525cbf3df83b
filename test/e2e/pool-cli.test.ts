/** `orch pool start` in the foreground and `orch pool status --json` from a second process. */
import { afterAll, expect, test } from 'bun:test'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { groupAlive, signalGroup } from '../../src/pool/proc.ts'
import type { PoolStats, WorkerStatus } from '../../src/pool/status.ts'

const CLI = join(import.meta.dir, '..', '..', 'commands', 'index.ts')
const SERVER = join(import.meta.dir, '..', 'helpers', 'model-server.ts')
const dir = mkdtempSync(join(tmpdir(), 'orch-pool-cli-'))
const started = new Set<number>()

afterAll(() => {
  for (const pid of started) signalGroup(pid, 'SIGKILL')
  rmSync(dir, { recursive: true, force: true })
})

function env(): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [key, value] of Object.entries(process.env)) if (value !== undefined && !key.startsWith('ORCH_')) out[key] = value
  return { ...out, NO_COLOR: '1', TZ: 'Etc/UTC' }
}

async function status(config: string): Promise<WorkerStatus[]> {
  return (await statusWithStats(config)).workers
}

async function statusWithStats(config: string): Promise<{ workers: WorkerStatus[]; stats: PoolStats }> {
  const proc = Bun.spawn([process.execPath, '--no-env-file', CLI, 'pool', 'status', '--json', '--config', config, '--home', dir], {
    stdout: 'pipe',
    stderr: 'pipe',
    env: env(),
  })
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited])
  expect(code).toBe(0)
  return JSON.parse(out) as { workers: WorkerStatus[]; stats: PoolStats }
}

test('pool start runs the workers until Ctrl-C, pool status reports them from another process', async () => {
  const config = join(dir, 'orch.json')
  writeFileSync(
    config,
    JSON.stringify({
      pool_startup_timeout: 20_000,
      graceful_shutdown_timeout_ms: 2000,
      pools: [{ name: 'gen', profile: 'command', api: 'ollama', pool_size: 2, command: [process.execPath, SERVER, '--port', '{port}'] }],
    }),
  )
  const orch = Bun.spawn([process.execPath, '--no-env-file', CLI, 'pool', 'start', '--config', config, '--home', dir], {
    stdout: 'ignore',
    stderr: 'pipe',
    env: env(),
  })
  started.add(orch.pid)
  let workers: WorkerStatus[] = []
  const deadline = Date.now() + 30_000
  while (!(workers.length === 2 && workers.every((w) => w.state === 'healthy'))) {
    if (Date.now() > deadline) throw new Error(`workers not healthy: ${JSON.stringify(workers)}`)
    await Bun.sleep(200)
    workers = await status(config)
  }
  const pids = workers.map((w) => w.pid as number)
  for (const pid of pids) started.add(pid)
  expect(workers.map((w) => w.id)).toEqual(['gen-1', 'gen-2'])
  expect(workers.every((w) => typeof w.port === 'number' && w.restarts === 0)).toBe(true)
  // Pool stats: worker figures from the records; queue figures need a running orch serve (none here).
  const { stats } = await statusWithStats(config)
  expect(stats).toMatchObject({ workers: 2, available: 2, busy: 0, requests: 0, queued: null, pool_saturated: null })
  orch.kill('SIGINT')
  expect(await orch.exited).toBe(0)
  expect(pids.every((pid) => !groupAlive(pid))).toBe(true)
  const after = await status(config)
  expect(after.map((w) => w.state)).toEqual(['stopped', 'stopped'])
}, 60_000)
