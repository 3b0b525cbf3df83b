/**
 * Pool supervision with real child processes: test/helpers/model-server.ts as a `command` worker.
 * Intervals are short, but every wait is a poll with a generous deadline (a loaded 2-core machine).
 */
import { afterAll, afterEach, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import * as v from 'valibot'
import { type OrchConfig, type OrchConfigInput, OrchConfigSchema } from '../../src/config/schema.ts'
import { isAlive } from '../../src/core/process.ts'
import { groupAlive, signalGroup } from '../../src/pool/proc.ts'
import { listWorkers, saveWorker } from '../../src/pool/records.ts'
import { Supervisor } from '../../src/pool/supervisor.ts'
import type { Worker } from '../../src/pool/worker.ts'
import { Engine } from '../../src/scheduler/engine.ts'
import { startServe } from '../../src/server/serve.ts'
import { openStore, type Store } from '../../src/store/db.ts'

const SERVER = join(import.meta.dir, '..', 'helpers', 'model-server.ts')
const SUPERVISOR = join(import.meta.dir, '..', 'helpers', 'pool-supervisor.ts')
const TEST_TIMEOUT = 60_000
const FAST = { probeInitialMs: 100, restartInitialMs: 100 }

/** Every process group and pid any test started: killed in afterAll whatever happened. */
const started = new Set<number>()
const homes: string[] = []
const running: Supervisor[] = []
const stores: Store[] = []

function home(): string {
  const dir = mkdtempSync(join(tmpdir(), 'orch-pool-'))
  homes.push(dir)
  return dir
}

function poolConfig(extraArgs: string[], pool: Record<string, unknown> = {}, rest: Partial<OrchConfigInput> = {}): OrchConfig {
  return v.parse(OrchConfigSchema, {
    pool_startup_timeout: 20_000,
    graceful_shutdown_timeout_ms: 2000,
    heartbeat: { ping_interval_ms: 200, timeout_ms: 500, max_missed_heartbeats: 2 },
    ...rest,
    pools: [
      { name: 'p', profile: 'command', api: 'ollama', command: [process.execPath, SERVER, '--port', '{port}', ...extraArgs], ...pool },
    ],
  })
}

function supervise(config: OrchConfig, extra: Partial<ConstructorParameters<typeof Supervisor>[0]> = {}): Supervisor {
  const supervisor = new Supervisor({ config, home: home(), timing: FAST, ...extra })
  running.push(supervisor)
  return supervisor
}

function track(workers: Worker[]): void {
  for (const w of workers) if (w.pid) started.add(w.pid)
}

async function until(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`)
    await Bun.sleep(50)
  }
}

const ask = (engine: Engine, n: number) => engine.chatOnce({ model: 'test-model', messages: [{ role: 'user', content: `hi ${n}` }] })

afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()))
})

afterAll(() => {
  for (const pid of started) {
    signalGroup(pid, 'SIGKILL')
    try {
      process.kill(pid, 'SIGKILL')
    } catch {}
  }
  for (const store of stores) store.close()
  for (const dir of homes) rmSync(dir, { recursive: true, force: true })
})

describe('pool supervisor', () => {
  test(
    'kill -9 a worker: requests keep succeeding, the worker restarts and is healthy again',
    async () => {
      const config = poolConfig([], { pool_size: 2 })
      const engine = new Engine({ config, backends: [], cache: null, healthIntervalMs: 0 })
      // The real restart backoff (1 s): a clear window in which only the sibling serves.
      const supervisor = supervise(config, { scheduler: engine.scheduler, timing: { ...FAST, restartInitialMs: 1000 } })
      await supervisor.start()
      const [victim, other] = supervisor.workers as [Worker, Worker]
      track(supervisor.workers)
      expect(victim.state).toBe('healthy')
      expect(engine.scheduler.states.size).toBe(2)
      const oldPid = victim.pid as number
      signalGroup(oldPid, 'SIGKILL')
      await until('the killed worker leaves routing', () => victim.state !== 'healthy' || victim.pid !== oldPid)
      const usable = () => [...engine.scheduler.states.values()].filter((state) => state.usable).length
      if (victim.state !== 'healthy') expect(usable()).toBe(1)
      // Requests made while it restarts are served by its sibling.
      const answers = await Promise.all([1, 2, 3, 4].map((n) => ask(engine, n)))
      expect(answers.map((a) => a.message.content)).toEqual(['echo: hi 1', 'echo: hi 2', 'echo: hi 3', 'echo: hi 4'])
      await until('the worker is healthy again', () => victim.state === 'healthy' && victim.pid !== oldPid)
      track(supervisor.workers)
      expect(victim.restarts).toBe(1)
      expect(other.restarts).toBe(0)
      expect(isAlive(oldPid)).toBe(false)
      expect(usable()).toBe(2)
      expect((await ask(engine, 5)).message.content).toBe('echo: hi 5')
    },
    TEST_TIMEOUT,
  )

  test(
    'kill -9 the only worker of a pool: a request made meanwhile waits for the restart instead of failing',
    async () => {
      const config = poolConfig([], { pool_size: 1 }, { pool_queue_timeout: 15_000 })
      const engine = new Engine({ config, backends: [], cache: null, healthIntervalMs: 0 })
      const supervisor = supervise(config, { scheduler: engine.scheduler, timing: { ...FAST, restartInitialMs: 500 } })
      await supervisor.start()
      const [only] = supervisor.workers as [Worker]
      track(supervisor.workers)
      const oldPid = only.pid as number
      signalGroup(oldPid, 'SIGKILL')
      await until('the killed worker leaves routing', () => only.state !== 'healthy')
      const answer = await ask(engine, 1)
      expect(answer.message.content).toBe('echo: hi 1')
      expect(only.pid).not.toBe(oldPid)
      track(supervisor.workers)
    },
    TEST_TIMEOUT,
  )

  test(
    'a worker that crashes on start trips the barrier after exactly max_restarts restarts',
    async () => {
      const config = poolConfig(['--crash-on-start'], {}, { crash_barrier: { max_restarts: 3, window_seconds: 60 } })
      const supervisor = supervise(config, { timing: { ...FAST, restartInitialMs: 50 } })
      await supervisor.start()
      const worker = supervisor.workers[0] as Worker
      expect(worker.state).toBe('failed')
      expect(worker.spawns).toBe(4)
      expect(worker.restarts).toBe(3)
      await Bun.sleep(500)
      expect(worker.spawns).toBe(4)
      // A reset clears the crash record: the worker gets max_restarts restarts again.
      expect((await supervisor.resetWorkers(supervisor.workers)).length).toBe(1)
      await until('failed again after a reset', () => worker.spawns === 8 && worker.state === 'failed')
    },
    TEST_TIMEOUT,
  )

  test(
    'a program that cannot be started counts as a crash and trips the barrier too',
    async () => {
      const config = v.parse(OrchConfigSchema, {
        crash_barrier: { max_restarts: 2, window_seconds: 60 },
        pools: [{ name: 'p', profile: 'command', command: ['/nonexistent/orch-test-server', '--port', '{port}'] }],
      })
      const supervisor = supervise(config, { timing: { ...FAST, restartInitialMs: 20 } })
      await supervisor.start()
      const worker = supervisor.workers[0] as Worker
      expect(worker.state).toBe('failed')
      expect(worker.restarts).toBe(2)
    },
    TEST_TIMEOUT,
  )

  test(
    'a worker that stops answering is restarted after its missed heartbeats',
    async () => {
      const config = poolConfig(['--hang-after', '3000'], {}, { crash_barrier: { enabled: false } })
      const supervisor = supervise(config)
      await supervisor.start()
      const worker = supervisor.workers[0] as Worker
      track(supervisor.workers)
      const firstPid = worker.pid as number
      expect(worker.state).toBe('healthy')
      await until('a restart after missed heartbeats', () => worker.restarts >= 1 && worker.state === 'healthy', 40_000)
      track(supervisor.workers)
      expect(worker.pid).not.toBe(firstPid)
      expect(groupAlive(firstPid)).toBe(false)
    },
    TEST_TIMEOUT,
  )

  test(
    'worker_max_requests: 5 under steady traffic recycles workers with zero failed requests',
    async () => {
      const config = poolConfig(['--delay-ms', '20'], { pool_size: 2, worker_max_requests: 5 })
      const engine = new Engine({ config, backends: [], cache: null, healthIntervalMs: 0 })
      const supervisor = supervise(config, { scheduler: engine.scheduler })
      await supervisor.start()
      track(supervisor.workers)
      let failures = 0
      let done = 0
      const client = async (id: number) => {
        for (let i = 0; i < 12; i++) {
          try {
            const answer = await ask(engine, id * 100 + i)
            if (answer.message.content !== `echo: hi ${id * 100 + i}`) failures++
            done++
          } catch (error) {
            failures++
            console.error(error)
          }
          track(supervisor.workers)
        }
      }
      await Promise.all([1, 2, 3].map(client))
      expect(failures).toBe(0)
      expect(done).toBe(36)
      const spawns = supervisor.workers.reduce((sum, w) => sum + w.spawns, 0)
      expect(spawns).toBeGreaterThan(2)
      expect(supervisor.workers.every((w) => w.restarts === 0)).toBe(true)
    },
    TEST_TIMEOUT,
  )
})

describe('orch serve', () => {
  test(
    'workers of the configured pools join the engine as backends, and leave on stop',
    async () => {
      const config = poolConfig([], { pool_size: 2 })
      const server = await startServe({ config, home: home(), version: '0.0.0-test', port: 0, backends: [], healthIntervalMs: 0 })
      const { engine, store } = server.deps
      const supervisor = server.deps.pools as Supervisor
      expect(supervisor).toBeInstanceOf(Supervisor)
      await until('both workers registered', () => engine.scheduler.states.size === 2)
      track(supervisor.workers)
      expect((await ask(engine, 1)).message.content).toBe('echo: hi 1')
      expect(listWorkers(store).map((r) => r.state)).toEqual(['healthy', 'healthy'])
      const pids = supervisor.workers.map((w) => w.pid as number)
      await server.stop()
      expect(engine.scheduler.states.size).toBe(0)
      expect(pids.every((pid) => !groupAlive(pid))).toBe(true)
      const reopened = openStore(dirname(store.path))
      stores.push(reopened)
      expect(listWorkers(reopened).map((r) => r.state)).toEqual(['stopped', 'stopped'])
    },
    TEST_TIMEOUT,
  )

  test('without pools configured there is no supervisor', async () => {
    const config = v.parse(OrchConfigSchema, {})
    const server = await startServe({ config, home: home(), version: '0.0.0-test', port: 0, backends: [], healthIntervalMs: 0 })
    expect(server.deps.pools).toBeUndefined()
    await server.stop()
  })
})

describe('children never outlive orch', () => {
  async function spawnSupervisor(dir: string, config: OrchConfigInput, parent?: number): Promise<{ pid: number; pids: number[] }> {
    const argv = [process.execPath, SUPERVISOR, dir, JSON.stringify(config), ...(parent ? [String(parent)] : [])]
    const child = Bun.spawn(argv, { stdout: 'pipe', stderr: 'ignore', env: { ...process.env, NO_COLOR: '1' } })
    started.add(child.pid)
    const reader = child.stdout.getReader()
    let text = ''
    const deadline = Date.now() + 25_000
    while (!text.includes('\n')) {
      if (Date.now() > deadline) throw new Error('supervisor child did not report its workers')
      const { value, done } = await reader.read()
      if (done) throw new Error(`supervisor child exited: ${text}`)
      text += new TextDecoder().decode(value)
    }
    const pids = (JSON.parse(text.split('\n')[0] as string) as { pids: number[] }).pids
    for (const pid of pids) started.add(pid)
    return { pid: child.pid, pids }
  }

  const childConfig: OrchConfigInput = {
    pool_startup_timeout: 20_000,
    graceful_shutdown_timeout_ms: 1000,
    pools: [{ name: 'p', profile: 'command', api: 'ollama', pool_size: 2, command: [process.execPath, SERVER, '--port', '{port}'] }],
  }

  test(
    'SIGKILL of the supervising process leaves no worker running',
    async () => {
      const { pid, pids } = await spawnSupervisor(home(), childConfig)
      expect(pids).toHaveLength(2)
      expect(pids.every((p) => groupAlive(p))).toBe(true)
      process.kill(pid, 'SIGKILL')
      await until('every worker group is gone', () => pids.every((p) => !groupAlive(p)), 15_000)
    },
    TEST_TIMEOUT,
  )

  test(
    'a restart reaps the workers a dead run left behind, and nothing else',
    async () => {
      const dir = home()
      // The watchdogs watch this test process, so the workers outlive their supervisor: stale.
      const { pid, pids } = await spawnSupervisor(dir, childConfig, process.pid)
      process.kill(pid, 'SIGKILL')
      await until('the supervisor is gone', () => !isAlive(pid))
      await Bun.sleep(1200)
      expect(pids.every((p) => groupAlive(p))).toBe(true)
      // A live process with a row of the dead run but no run marker: never touched.
      const bystander = Bun.spawn(['sleep', '60'], { detached: true })
      started.add(bystander.pid)
      const store = openStore(dir)
      stores.push(store)
      saveWorker(store, {
        ...(listWorkers(store)[0] as ReturnType<typeof listWorkers>[number]),
        worker_id: 'p-9',
        pid: bystander.pid,
        pgid: bystander.pid,
      })
      const supervisor = supervise(v.parse(OrchConfigSchema, { graceful_shutdown_timeout_ms: 1000 }), { home: dir, store })
      await supervisor.start()
      expect(pids.every((p) => !groupAlive(p))).toBe(true)
      expect(isAlive(bystander.pid)).toBe(true)
      expect(listWorkers(store)).toHaveLength(0)
      bystander.kill('SIGKILL')
    },
    TEST_TIMEOUT,
  )
})
