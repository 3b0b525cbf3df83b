/**
 * `orch pool stop|restart|reset|logs` from another process while `orch pool start` runs in a child process
 * (test/helpers/model-server.ts as `command` workers). Every wait is a poll with a generous deadline.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as v from 'valibot'
import { OrchConfigSchema } from '../../src/config/schema.ts'
import type { ControlReply } from '../../src/pool/control.ts'
import { groupAlive, signalGroup } from '../../src/pool/proc.ts'
import type { WorkerStatus } from '../../src/pool/status.ts'
import { ROOT, runCli, tempDir } from '../helpers/cli.ts'
import { startTestServe } from '../helpers/serve.ts'

const SERVER = join(import.meta.dir, '..', 'helpers', 'model-server.ts')
const TEST_TIMEOUT = 60_000
const home = tempDir('orch-pool-ctl-')
const config = join(home.path, 'orch.json')
const marks = join(home.path, 'bad-spawns.txt')
/** Every process group seen: killed in afterAll whatever happened. */
const seen = new Set<number>()
let orch: ReturnType<typeof Bun.spawn> | undefined

const pool = (args: string[]) => runCli(['pool', ...args, '--config', config, '--home', home.path])
const spawns = () => (existsSync(marks) ? readFileSync(marks, 'utf8').trim().split('\n').length : 0)

async function status(): Promise<Record<string, WorkerStatus>> {
  const res = await pool(['status', '--json'])
  if (res.code !== 0) throw new Error(`pool status: exit ${res.code}: ${res.stderr}`)
  const workers = res.json<{ workers: WorkerStatus[] }>().workers
  for (const w of workers) if (w.pid) seen.add(w.pid)
  return Object.fromEntries(workers.map((w) => [w.id, w]))
}

async function until(what: string, check: (s: Record<string, WorkerStatus>) => boolean, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs
  let last: Record<string, WorkerStatus> = {}
  while (Date.now() < deadline) {
    last = await status()
    if (check(last)) return last
    await Bun.sleep(150)
  }
  throw new Error(`timed out waiting for ${what}: ${JSON.stringify(last)}`)
}

beforeAll(async () => {
  const command = (extra: string[]) => [process.execPath, SERVER, '--port', '{port}', ...extra]
  writeFileSync(
    config,
    JSON.stringify({
      pool_startup_timeout: 20_000,
      graceful_shutdown_timeout_ms: 2000,
      heartbeat: { ping_interval_ms: 200, timeout_ms: 1000, max_missed_heartbeats: 3 },
      crash_barrier: { max_restarts: 1, window_seconds: 60 },
      pools: [
        { name: 'gen', profile: 'command', api: 'ollama', pool_size: 2, command: command([]) },
        { name: 'bad', profile: 'command', api: 'ollama', pool_size: 1, command: command(['--crash-on-start', '--mark', marks]) },
      ],
    }),
  )
  orch = Bun.spawn(
    [process.execPath, '--no-env-file', join(ROOT, 'commands', 'index.ts'), 'pool', 'start', '--config', config, '--home', home.path],
    {
      stdout: 'ignore',
      stderr: Bun.file(join(home.path, 'pool-start.stderr')),
      env: { ...process.env, NO_COLOR: '1', TZ: 'Etc/UTC' },
    },
  )
  seen.add(orch.pid)
  // The socket exists once the supervisor runs (its state.db is set up by then).
  const deadline = Date.now() + 30_000
  while (!existsSync(join(home.path, 'run', 'pool.sock'))) {
    if (Date.now() > deadline || orch.exitCode !== null) throw new Error(`pool start did not come up (exit ${orch.exitCode})`)
    await Bun.sleep(50)
  }
  await until(
    'gen healthy and bad failed',
    (s) => s['gen-1']?.state === 'healthy' && s['gen-2']?.state === 'healthy' && s['bad-1']?.state === 'failed',
  )
}, TEST_TIMEOUT)

afterAll(async () => {
  if (orch && orch.exitCode === null) {
    orch.kill('SIGINT')
    await Promise.race([orch.exited, Bun.sleep(10_000)])
  }
  for (const pid of seen) signalGroup(pid, 'SIGKILL')
  home.cleanup()
})

describe('orch pool control from another process', () => {
  test('the control socket is private to its owner', () => {
    expect(statSync(join(home.path, 'run', 'pool.sock')).mode & 0o777).toBe(0o600)
  })

  test(
    'stop <worker>: its process is gone and it stays stopped; its sibling keeps serving',
    async () => {
      const before = await status()
      const pid = before['gen-2']?.pid as number
      const res = await pool(['stop', 'gen-2'])
      expect(res.code).toBe(0)
      expect(res.stdout).toContain('stopped gen-2')
      expect(groupAlive(pid)).toBe(false)
      await Bun.sleep(1500)
      const after = await status()
      expect(after['gen-2']).toMatchObject({ state: 'stopped', pid: null })
      expect(after['gen-1']).toMatchObject({ state: 'healthy', pid: before['gen-1']?.pid })
      expect(groupAlive(pid)).toBe(false)
    },
    TEST_TIMEOUT,
  )

  test(
    'restart <worker>: a stopped one and a healthy one (drained) come back with new pids',
    async () => {
      const before = await status()
      const stopped = await pool(['restart', 'gen-2', '--json'])
      expect(stopped.code).toBe(0)
      const reply = stopped.json<ControlReply>()
      expect(reply.ok && reply.workers[0]?.state).toBe('healthy')
      const oldPid = before['gen-1']?.pid as number
      const healthy = await pool(['restart', 'gen-1'])
      expect(healthy.code).toBe(0)
      const after = await until('both healthy', (s) => s['gen-1']?.state === 'healthy' && s['gen-2']?.state === 'healthy')
      expect(after['gen-1']?.pid).not.toBe(oldPid)
      expect(typeof after['gen-2']?.pid).toBe('number')
      expect(groupAlive(oldPid)).toBe(false)
    },
    TEST_TIMEOUT,
  )

  test(
    'reset: a failed worker starts again (and trips the barrier again)',
    async () => {
      expect(spawns()).toBe(2)
      const none = await pool(['reset', 'gen-1'])
      expect(none.code).toBe(0)
      expect(none.stdout).toContain('no failed worker to reset')
      const res = await pool(['reset', 'bad'])
      expect(res.code).toBe(0)
      expect(res.stdout).toContain('reset bad-1')
      await until('bad failed again', (s) => s['bad-1']?.state === 'failed' && spawns() === 4)
    },
    TEST_TIMEOUT,
  )

  test('an unknown name is refused with the known ones', async () => {
    const res = await pool(['stop', 'nope'])
    expect(res.code).toBe(2)
    expect(res.stderr).toContain('unknown worker "nope"')
    expect(res.stderr).toContain('gen-1, gen-2, bad-1')
  })

  test('logs <worker> --tail 5 prints its log', async () => {
    const res = await pool(['logs', 'gen-1', '--tail', '5'])
    expect(res.code).toBe(0)
    const lines = res.stdout.trim().split('\n')
    expect(lines.length).toBeGreaterThanOrEqual(2)
    expect(lines.length).toBeLessThanOrEqual(5)
    expect(lines.some((line) => line.includes('model-server pid') && line.includes('listening on'))).toBe(true)
    const unknown = await pool(['logs', 'nope'])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain('gen/gen-1')
  })

  test(
    'logs <worker> --follow prints what the restarted worker writes, until Ctrl-C',
    async () => {
      const argv = [
        process.execPath,
        '--no-env-file',
        join(ROOT, 'commands', 'index.ts'),
        'pool',
        'logs',
        'gen-2',
        '--follow',
        '--tail',
        '1',
      ]
      const follower = Bun.spawn([...argv, '--config', config, '--home', home.path], {
        stdout: 'pipe',
        stderr: 'ignore',
        env: { ...process.env, NO_COLOR: '1', TZ: 'Etc/UTC' },
      })
      seen.add(follower.pid)
      const reader = follower.stdout.getReader()
      const decoder = new TextDecoder()
      let text = ''
      const readUntil = async (what: string, check: () => boolean) => {
        const deadline = Date.now() + 20_000
        while (!check()) {
          if (Date.now() > deadline) throw new Error(`no ${what} in: ${text}`)
          // A read that never returns must not outlast the deadline.
          const wait = Bun.sleep(Math.max(0, deadline - Date.now())).then(() => undefined)
          const next = await Promise.race([reader.read(), wait])
          if (!next) continue
          if (next.done) throw new Error(`follower exited before ${what}: ${text}`)
          text += decoder.decode(next.value, { stream: true })
        }
      }
      try {
        // The last line is printed once the follower has its place in the file.
        await readUntil('first line', () => text.includes('\n'))
        expect((await pool(['restart', 'gen-2'])).code).toBe(0)
        // The new process announces itself (the worker's pid is its watchdog's, so count lines).
        await readUntil('the new process line', () => text.split('listening on').length - 1 >= 2)
        follower.kill('SIGINT')
        expect(await follower.exited).toBe(0)
      } finally {
        follower.kill('SIGKILL')
      }
    },
    TEST_TIMEOUT,
  )

  test(
    'Ctrl-C on pool start stops every worker and removes the socket',
    async () => {
      const workers = Object.values(await status())
      orch?.kill('SIGINT')
      expect(await orch?.exited).toBe(0)
      expect(workers.every((w) => w.pid === null || !groupAlive(w.pid))).toBe(true)
      expect(existsSync(join(home.path, 'run', 'pool.sock'))).toBe(false)
    },
    TEST_TIMEOUT,
  )
})

test('with no supervisor running: exit 1 and how to start one', async () => {
  const empty = tempDir('orch-pool-none-')
  try {
    for (const cmd of ['stop', 'restart', 'reset']) {
      const res = await runCli(['pool', cmd, '--home', empty.path])
      expect(res.code).toBe(1)
      expect(res.stderr).toContain('no pool supervisor is running')
      expect(res.stderr).toContain('orch pool start')
    }
  } finally {
    empty.cleanup()
  }
})

test(
  'orch serve takes the same commands: restarting its pool under steady traffic fails no request',
  async () => {
    const serve = await startTestServe({
      fakes: [],
      tweak: (c) => {
        const parsed = v.parse(OrchConfigSchema, {
          pool_startup_timeout: 20_000,
          pools: [
            {
              name: 'gen',
              profile: 'command',
              api: 'ollama',
              pool_size: 2,
              command: [process.execPath, SERVER, '--port', '{port}', '--delay-ms', '20'],
            },
          ],
        })
        c.pool_startup_timeout = parsed.pool_startup_timeout
        c.pools = parsed.pools
      },
    })
    const cli = (args: string[]) => runCli(['pool', ...args, '--home', serve.home])
    try {
      let before: WorkerStatus[] = []
      const deadline = Date.now() + 30_000
      while (!(before.length === 2 && before.every((w) => w.state === 'healthy'))) {
        if (Date.now() > deadline) throw new Error(`workers not healthy: ${JSON.stringify(before)}`)
        await Bun.sleep(150)
        before = (await cli(['status', '--json'])).json<{ workers: WorkerStatus[] }>().workers
      }
      const oldPids = before.map((w) => w.pid as number)
      for (const pid of oldPids) seen.add(pid)
      let traffic = true
      const failures: string[] = []
      let done = 0
      const client = async (id: number) => {
        for (let i = 0; traffic; i++) {
          const content = `hi ${id}-${i}`
          const res = await serve.fetch('/api/chat', {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ model: 'test-model', stream: false, messages: [{ role: 'user', content }] }),
          })
          const text = await res.text()
          if (res.status !== 200 || !text.includes(`echo: ${content}`)) failures.push(`${res.status} ${text}`)
          done++
        }
      }
      const clients = [1, 2, 3].map(client)
      const restarted = await cli(['restart', 'gen', '--json'])
      traffic = false
      await Promise.all(clients)
      expect(restarted.code).toBe(0)
      const reply = restarted.json<ControlReply>()
      const workers = reply.ok ? reply.workers : []
      for (const w of workers) if (w.pid) seen.add(w.pid)
      expect(workers.map((w) => w.state)).toEqual(['healthy', 'healthy'])
      expect(workers.every((w) => w.pid !== null && !oldPids.includes(w.pid))).toBe(true)
      expect(oldPids.every((pid) => !groupAlive(pid))).toBe(true)
      expect(failures).toEqual([])
      expect(done).toBeGreaterThan(10)
    } finally {
      await serve.stop()
    }
  },
  TEST_TIMEOUT,
)
