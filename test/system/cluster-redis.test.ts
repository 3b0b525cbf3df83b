/**
 * Many machines on one Redis, all real: a redis-server (AOF, appendfsync always) on a free loopback port,
 * two orch serve instances (control planes, no tasks of their own) and orch worker processes spawned from
 * the CLI, running tasks on fake Ollama servers (the real wire format).
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { runCli, spawnCli, tempDir } from '../helpers/cli.ts'
import {
  type ClusterServe,
  type ClusterWorker,
  clusterConfig,
  fileConfig,
  startClusterServe,
  startClusterWorker,
  until,
} from '../helpers/cluster.ts'
import { type FakeServer, startFakeOllama } from '../helpers/fake-ollama.ts'
import { type RedisServer, startRedis } from '../helpers/redis-server.ts'
import { sseFrames } from '../helpers/sse.ts'

const T = 60_000
let redis: RedisServer
let run = 0
const cleanups: Array<() => Promise<unknown>> = []

beforeAll(async () => {
  redis = await startRedis({ aof: true })
})
afterAll(async () => {
  await redis.stop()
})
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined)
})

const chat = (text: string, extra: Record<string, unknown> = {}) => ({
  type: 'chat',
  model: 'llama3.2',
  payload: { model: 'llama3.2', messages: [{ role: 'user', content: text }], stream: false },
  ...extra,
})

async function cluster(options: { serves?: number; workers?: number; latencyMs?: number; holdMs?: number; leaseMs?: number } = {}) {
  const prefix = `cluster${++run}`
  const config = clusterConfig(redis, prefix, (c) => {
    if (options.leaseMs) c.tasks.lease_ms = options.leaseMs
  })
  // holdMs: how long each model call takes (health probes answer at once).
  const fake = await startFakeOllama({ latencyMs: options.latencyMs ?? 2, callCostMs: options.holdMs ?? 0 })
  cleanups.push(() => fake.stop())
  const serves: ClusterServe[] = []
  for (let i = 0; i < (options.serves ?? 2); i++) {
    const s = await startClusterServe(config)
    cleanups.push(() => s.stop())
    serves.push(s)
  }
  const workers: ClusterWorker[] = []
  const addWorker = async (backend: FakeServer = fake) => {
    const w = await startClusterWorker(config, backend)
    cleanups.push(() => (w.proc.exitCode === null ? w.kill() : Promise.resolve()))
    workers.push(w)
    return w
  }
  for (let i = 0; i < (options.workers ?? 2); i++) await addWorker()
  return { prefix, config, fake, serves, workers, addWorker }
}

async function submit(s: ClusterServe, body: unknown): Promise<Response> {
  return s.fetch('/queue/submit', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
}

async function stats(s: ClusterServe): Promise<any> {
  return (await s.fetch('/stats')).json()
}

async function task(s: ClusterServe, id: string): Promise<any> {
  return (await s.fetch(`/tasks/${id}`)).json()
}

describe('a cluster on Redis', () => {
  test(
    'two serves and two workers run 1,000 tasks: each accepted task runs once and finishes, visible on both serves',
    async () => {
      const { serves, workers, fake } = await cluster()
      const [a, b] = serves as [ClusterServe, ClusterServe]
      const ids: string[] = []
      for (let batch = 0; batch < 10; batch++) {
        const via = batch % 2 ? b : a
        const res = await submit(
          via,
          Array.from({ length: 100 }, (_, i) => chat(`task ${batch * 100 + i}`)),
        )
        expect(res.status).toBe(202)
        for (const t of ((await res.json()) as any).tasks) ids.push(t.id)
      }
      expect(new Set(ids).size).toBe(1000)
      await until(async () => (await stats(a)).tasks.done === 1000, 45_000, '1,000 tasks done')
      const [sa, sb] = [await stats(a), await stats(b)]
      expect(sa.tasks).toEqual({ queued: 0, running: 0, done: 1000, failed: 0, cancelled: 0 })
      expect(sb.tasks).toEqual(sa.tasks)
      // Each ran exactly once: no kill, so no task is taken over.
      expect(fake.calls.filter((c) => c.path === '/api/chat')).toHaveLength(1000)
      // Both workers took part, and the serves ran none (no backend, --no-tasks).
      const owners = new Map<string, number>()
      for (const id of ids.slice(0, 1000)) {
        const t = await task(b, id)
        expect(t.state).toBe('done')
        expect(t.attempts).toBe(1)
        owners.set(t.lease_owner, (owners.get(t.lease_owner) ?? 0) + 1)
      }
      expect(new Set(owners.keys())).toEqual(new Set(workers.map((w) => w.id)))
      // The workers of the cluster, as orch status shows them: both alive, the two serves too.
      const runners = sa.cluster.runners as Array<{ id: string; role: string; alive: boolean }>
      expect(
        runners
          .filter((r) => r.role === 'worker' && r.alive)
          .map((r) => r.id)
          .sort(),
      ).toEqual(workers.map((w) => w.id).sort())
      expect(runners.filter((r) => r.role === 'serve')).toHaveLength(2)
      // /metrics of either serve carries the cluster's figures, from Redis, under its own instance label.
      const text = await (await b.fetch('/metrics')).text()
      const instance = b.server.deps.instance
      expect(text).toContain(`orch_tasks{instance="${instance}",state="done"} 1000\n`)
      expect(text).toContain(`orch_cluster_task_runners{instance="${instance}",state="alive"} 4\n`)
      // A task listed on one serve is the task the other serve gets, field for field.
      const listed = ((await (await a.fetch('/tasks?state=done&limit=20')).json()) as any).tasks
      expect(listed).toHaveLength(20)
      for (const t of listed) expect(await task(b, t.id)).toEqual(t)
    },
    T,
  )

  test(
    'a worker killed with -9 mid-task: the task completes on the other worker within the lease and a recovery interval',
    async () => {
      const leaseMs = 1500
      const { serves, workers, fake } = await cluster({ serves: 1, workers: 2, holdMs: 20_000, leaseMs })
      const a = serves[0] as ClusterServe
      const { id } = (await (await submit(a, chat('held'))).json()) as { id: string }
      await until(async () => (await task(a, id)).state === 'running' && fake.stats.inFlight === 1, 10_000, 'the task running')
      const owner = (await task(a, id)).lease_owner as string
      const victim = workers.find((w) => w.id === owner) as ClusterWorker
      expect(victim).toBeDefined()
      fake.set({ callCostMs: 0 })
      const killedAt = Date.now()
      await victim.kill()
      await until(async () => (await task(a, id)).state === 'done', leaseMs + leaseMs / 2 + 2000, 'taken over and done')
      const tookMs = Date.now() - killedAt
      const done = await task(a, id)
      const survivor = workers.find((w) => w !== victim) as ClusterWorker
      expect(done).toMatchObject({ state: 'done', attempts: 2, stalled_count: 1, lease_owner: survivor.id })
      expect(tookMs).toBeLessThan(leaseMs + leaseMs / 2 + 1500)
      // One extra run, for the one task that was in flight at the kill.
      expect(fake.calls.filter((c) => c.path === '/api/chat')).toHaveLength(2)
    },
    T,
  )

  test(
    'a worker that stalls past its lease (SIGSTOP) loses the task to another; its late result is refused',
    async () => {
      const leaseMs = 1500
      const { serves, workers, fake } = await cluster({ serves: 1, workers: 1, holdMs: 600, leaseMs })
      const a = serves[0] as ClusterServe
      const first = workers[0] as ClusterWorker
      const { id } = (await (await submit(a, chat('slow'))).json()) as { id: string }
      await until(async () => fake.stats.inFlight === 1, 10_000, 'the first call in flight')
      first.proc.kill('SIGSTOP')
      try {
        const second = await startClusterWorker(clusterConfig(redis, (await clusterPrefix(a)) as string), fake)
        cleanups.push(() => (second.proc.exitCode === null ? second.kill() : Promise.resolve()))
        await until(async () => (await task(a, id)).state === 'done', 15_000, 'done by the second worker')
        const done = await task(a, id)
        expect(done.lease_owner).toBe(second.id)
        // The stopped worker wakes with its answer long arrived: its completion must change nothing.
        first.proc.kill('SIGCONT')
        await Bun.sleep(leaseMs)
        expect(await task(a, id)).toEqual(done)
        const events = (await (await a.fetch('/tasks?state=done')).json()) as any
        expect(events.tasks.map((t: any) => t.id)).toEqual([id])
      } finally {
        first.proc.kill('SIGCONT')
      }
    },
    T,
  )

  test(
    'SIGTERM drains a worker: a task that cannot finish within the grace period goes back to the queue untouched and runs elsewhere',
    async () => {
      const { serves, workers, fake, addWorker } = await cluster({ serves: 1, workers: 1, holdMs: 10_000, leaseMs: 30_000 })
      const a = serves[0] as ClusterServe
      const { id } = (await (await submit(a, chat('long'))).json()) as { id: string }
      await until(async () => fake.stats.inFlight === 1, 10_000, 'the call in flight')
      const stoppedAt = Date.now()
      expect(await (workers[0] as ClusterWorker).stop()).toBe(0)
      // graceful_shutdown_timeout_ms is 500: the worker waited for it, then handed the task back at once.
      expect(Date.now() - stoppedAt).toBeLessThan(5000)
      expect(await task(a, id)).toMatchObject({ state: 'queued', attempts: 0, stalled_count: 0, lease_owner: null })
      const runners = (await stats(a)).cluster.runners as Array<{ id: string }>
      expect(runners.map((r) => r.id)).not.toContain((workers[0] as ClusterWorker).id)
      fake.set({ callCostMs: 0 })
      const next = await addWorker()
      await until(async () => (await task(a, id)).state === 'done', 10_000, 'done by the next worker')
      expect(await task(a, id)).toMatchObject({ attempts: 1, lease_owner: next.id })
    },
    T,
  )

  test(
    "a workflow on one serve runs its steps on the cluster's workers, each step starting as soon as the one before finished",
    async () => {
      const { serves } = await cluster({ serves: 1, workers: 1 })
      const a = serves[0] as ClusterServe
      const steps = [
        { id: 'a', type: 'chat', model: 'llama3.2', prompt: 'alpha' },
        { id: 'b', type: 'chat', model: 'llama3.2', prompt: 'beta after {{steps.a.output}}', depends_on: ['a'] },
        { id: 'c', type: 'chat', model: 'llama3.2', prompt: 'gamma after {{steps.b.output}}', depends_on: ['b'] },
      ]
      const started = Date.now()
      const created = await a.fetch('/workflows', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'chain', steps, run: true }),
      })
      expect(created.status).toBe(201)
      const { run_id } = (await created.json()) as { run_id: string }
      let run: any
      await until(
        async () => {
          run = await (await a.fetch(`/runs/${run_id}`)).json()
          return ['done', 'failed', 'cancelled'].includes(run.state)
        },
        10_000,
        'the run finished',
      )
      expect(run.state).toBe('done')
      expect(run.steps.map((x: any) => x.output)).toEqual(['alpha', 'beta after alpha', 'gamma after beta after alpha'])
      // Each step's task finished on a worker, another process: the serve hears it on the cluster's stream
      // at once, not at its next look at the runs in flight (every second).
      expect(Date.now() - started).toBeLessThan(1500)
    },
    T,
  )

  test(
    'orch status of a serve in a cluster lists the task runners of every machine, in text and --json',
    async () => {
      const { config, workers } = await cluster({ serves: 0, workers: 1 })
      const dir = tempDir('orch-cluster-status-')
      cleanups.push(async () => dir.cleanup())
      const file = join(dir.path, 'orch.yaml')
      writeFileSync(file, stringify(fileConfig(config)))
      const serve = spawnCli(['serve', '--port', '0', '--no-tasks', '--config', file, '--home', dir.path, '--json', '--log-level', 'error'])
      cleanups.push(async () => {
        serve.kill('SIGTERM')
        await serve.exited
      })
      const first = await serve.stdout.getReader().read()
      expect(new TextDecoder().decode(first.value)).toContain('"url"')
      const worker = workers[0] as ClusterWorker
      let json: any
      await until(
        async () => {
          json = (await runCli(['status', '--config', file, '--home', dir.path, '--json'])).json()
          return (json.stats?.cluster?.runners ?? []).length === 2
        },
        10_000,
        'both runners listed',
      )
      const roles = json.stats.cluster.runners.map((r: any) => [r.role, r.alive]).sort()
      expect(roles).toEqual([
        ['serve', true],
        ['worker', true],
      ])
      const text = await runCli(['status', '--config', file, '--home', dir.path])
      expect(text.code).toBe(0)
      expect(text.stdout).toContain('Redis; 2 of 2 task runners alive')
      expect(text.stdout).toMatch(new RegExp(`worker ${worker.id.replaceAll('.', '\\.')}\\s+running 0/8\\s+alive`))
      expect(text.stdout).toMatch(/serve \S+\s+running 0\/0\s+alive/)
    },
    T,
  )

  test(
    'machines serving different models: each task waits for a worker whose backend has its model, and runs once',
    async () => {
      const { serves, config } = await cluster({ serves: 1, workers: 0 })
      const a = serves[0] as ClusterServe
      const [alpha, beta] = [await startFakeOllama({ models: ['alpha'] }), await startFakeOllama({ models: ['beta'] })]
      cleanups.push(
        () => alpha.stop(),
        () => beta.stop(),
      )
      for (const fake of [alpha, beta]) {
        const w = await startClusterWorker(config, fake)
        cleanups.push(() => (w.proc.exitCode === null ? w.kill() : Promise.resolve()))
      }
      const ask = (model: string, i: number) => ({
        type: 'chat',
        model,
        payload: { model, messages: [{ role: 'user', content: `${model} ${i}` }], stream: false },
      })
      const res = await submit(a, [
        ...Array.from({ length: 20 }, (_, i) => ask('alpha', i)),
        ...Array.from({ length: 20 }, (_, i) => ask('beta', i)),
      ])
      const ids = ((await res.json()) as any).tasks.map((t: any) => t.id)
      await until(async () => (await stats(a)).tasks.done === 40, 15_000, '40 tasks done')
      for (const id of ids) expect(await task(a, id)).toMatchObject({ state: 'done', attempts: 1 })
      const models = (f: FakeServer) => new Set(f.calls.filter((c) => c.path === '/api/chat').map((c) => c.model))
      expect(models(alpha)).toEqual(new Set(['alpha']))
      expect(models(beta)).toEqual(new Set(['beta']))
    },
    T,
  )

  test(
    'a task cancelled on one serve is stopped on the worker running it: its model call is aborted',
    async () => {
      // A long lease: renewals (a third of it) are far apart, so only the cluster's event stream can stop it this soon.
      const { serves, fake } = await cluster({ serves: 2, workers: 1, holdMs: 30_000, leaseMs: 30_000 })
      const [a, b] = serves as [ClusterServe, ClusterServe]
      const { id } = (await (await submit(b, chat('forever'))).json()) as { id: string }
      await until(async () => fake.stats.inFlight === 1, 10_000, 'the call in flight')
      const cancelledAt = Date.now()
      const res = await a.fetch(`/tasks/${id}`, { method: 'DELETE' })
      expect(res.status).toBe(200)
      expect(((await res.json()) as any).state).toBe('cancelled')
      await until(() => fake.stats.inFlight === 0, 3000, 'the model call aborted')
      expect(Date.now() - cancelledAt).toBeLessThan(1500)
      expect(fake.calls.at(-1)?.aborted).toBe(true)
      expect((await task(b, id)).state).toBe('cancelled')
    },
    T,
  )

  test(
    'events: SSE on one serve shows tasks submitted on the other; Last-Event-ID from one resumes on the other',
    async () => {
      const { serves } = await cluster({ serves: 2, workers: 0 })
      const [a, b] = serves as [ClusterServe, ClusterServe]
      const onA = await openEvents(a, '?types=task')
      const { id } = (await (await submit(b, chat('seen elsewhere'))).json()) as { id: string }
      const frame = await onA.next()
      expect(frame).toMatchObject({ event: 'task', data: { id, change: 'submitted', state: 'queued', tenant: 'default' } })
      onA.close()
      // Missed while away: two more, then resume on the other serve from the last id seen on the first.
      const more = ((await (await submit(a, [chat('m1'), chat('m2')])).json()) as any).tasks.map((t: any) => t.id)
      const onB = await openEvents(b, '?types=task', { 'last-event-id': String(frame.id) })
      const replayed = [await onB.next(), await onB.next()]
      onB.close()
      expect(replayed.map((f) => f.data.id)).toEqual(more)
      expect(replayed.map((f) => f.id)).toEqual([frame.id + 1, frame.id + 2])
    },
    T,
  )

  test(
    'the response cache and the breakers are shared: B answers from what A cached; a circuit A opens is open on B',
    async () => {
      const prefix = `cluster${++run}`
      const config = clusterConfig(redis, prefix, (c) => {
        c.infrastructure_system.llm_orchestration.caching.cache_backend = 'redis'
        c.circuit_breaker.failure_threshold = 2
        c.circuit_breaker.reset_timeout_ms = 60_000
      })
      const fake = await startFakeOllama({ latencyMs: 1 })
      cleanups.push(() => fake.stop())
      const [a, b] = [await startClusterServe(config, { backends: [fake] }), await startClusterServe(config, { backends: [fake] })]
      cleanups.push(
        () => a.stop(),
        () => b.stop(),
      )
      const ask = (s: ClusterServe) =>
        s.fetch('/api/chat', {
          method: 'POST',
          body: JSON.stringify({
            model: 'llama3.2',
            messages: [{ role: 'user', content: 'cached?' }],
            stream: false,
            options: { temperature: 0 },
          }),
        })
      const first = await ask(a)
      expect(first.status).toBe(200)
      const answer = await first.json()
      const calls = fake.calls.length
      // A stores its answer after it replied (a request never waits on the cache): wait for it to land.
      const cached = () =>
        Bun.spawnSync(['redis-cli', '-p', String(redis.port), '--scan', '--pattern', `${prefix}:cache:*`])
          .stdout.toString()
          .trim() !== ''
      await until(cached, 2000, "A's answer in the shared cache")
      const second = await ask(b)
      expect(second.status).toBe(200)
      expect(await second.json()).toEqual(answer)
      expect(fake.calls.length).toBe(calls)
      // Breakers: two failures through A open fake0 there; B learns it without a call of its own.
      fake.failNext(2, 500)
      const failing = (s: ClusterServe, text: string) =>
        s.fetch('/api/chat', {
          method: 'POST',
          body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: text }], stream: false }),
        })
      await failing(a, 'f1')
      await failing(a, 'f2')
      const breakerOf = (s: ClusterServe) => s.server.deps.engine.backends().find((x) => x.name === 'fake0')?.breaker.state
      expect(breakerOf(a)).toBe('open')
      await until(() => breakerOf(b) === 'open', 2000, "B's breaker open")
      const before = fake.calls.length
      const refused = await failing(b, 'f3')
      expect(refused.status).toBe(503)
      expect(fake.calls.length).toBe(before)
    },
    T,
  )

  test(
    'Redis killed and restarted mid-run (AOF, fsync always): /health answers throughout, submits while it is down get 503 + Retry-After, every accepted task finishes, no restart of orch',
    async () => {
      const { serves, fake } = await cluster({ serves: 2, workers: 2, latencyMs: 5 })
      const [a, b] = serves as [ClusterServe, ClusterServe]
      const accepted: string[] = []
      const refused: Response[] = []
      let healthFailures = 0
      const submitOne = async (i: number) => {
        const res = await submit(i % 2 ? b : a, chat(`r${i}`))
        if (res.status === 202) accepted.push(((await res.json()) as any).id)
        else refused.push(res)
      }
      for (let i = 0; i < 100; i++) await submitOne(i)
      await redis.halt({ kill: true })
      for (let i = 100; i < 120; i++) {
        await submitOne(i)
        if ((await a.fetch('/health')).status !== 200) healthFailures++
      }
      await redis.start()
      // Back on their own: submissions are accepted again within a few seconds.
      let i = 120
      await until(
        async () => {
          const before = accepted.length
          await submitOne(i++)
          return accepted.length > before
        },
        10_000,
        'a submission accepted again after the restart',
      )
      for (let k = 0; k < 100; k++) await submitOne(i++)
      expect(healthFailures).toBe(0)
      expect(refused.length).toBeGreaterThanOrEqual(20)
      for (const res of refused) {
        expect(res.status).toBe(503)
        expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0)
        expect(((await res.json()) as any).error.code).toBe('E_REDIS_UNAVAILABLE')
      }
      await until(async () => (await stats(a)).tasks.done === accepted.length, 30_000, `all ${accepted.length} accepted tasks done`)
      for (const id of accepted) expect((await task(b, id)).state).toBe('done')
      expect(fake.calls.filter((c) => c.path === '/api/chat').length).toBeGreaterThanOrEqual(accepted.length)
    },
    T,
  )

  test(
    'started while Redis is down: serve answers /health and refuses submits with 503, a worker waits; once Redis is up both go on by themselves',
    async () => {
      const late = await startRedis({ aof: true })
      cleanups.push(() => late.stop())
      await late.halt({ kill: true })
      const config = clusterConfig(late, `late${++run}`)
      const fake = await startFakeOllama({ latencyMs: 1 })
      cleanups.push(() => fake.stop())
      const a = await startClusterServe(config)
      cleanups.push(() => a.stop())
      expect((await a.fetch('/health')).status).toBe(200)
      const refused = await submit(a, chat('too early'))
      expect(refused.status).toBe(503)
      expect(refused.headers.get('retry-after')).toBe('2')
      expect(((await refused.json()) as any).error).toMatchObject({ code: 'E_REDIS_UNAVAILABLE' })
      const worker = await startClusterWorker(config, fake)
      cleanups.push(() => (worker.proc.exitCode === null ? worker.kill() : Promise.resolve()))
      await late.start()
      let id: string | undefined
      await until(
        async () => {
          const res = await submit(a, chat('now'))
          if (res.status === 202) id = ((await res.json()) as any).id
          return id !== undefined
        },
        10_000,
        'a submission accepted once Redis is up',
      )
      await until(async () => (await task(a, id as string)).state === 'done', 10_000, 'run by the worker started while Redis was down')
    },
    T,
  )
})

async function clusterPrefix(s: ClusterServe): Promise<string | undefined> {
  return s.server.deps.config.infrastructure_system.distributed_simulation.redis_prefix
}

async function openEvents(s: ClusterServe, query: string, headers: Record<string, string> = {}) {
  const controller = new AbortController()
  const response = await s.fetch(`/events${query}`, { headers, signal: controller.signal })
  expect(response.status).toBe(200)
  const { next } = sseFrames(response.body as ReadableStream<Uint8Array>)
  return { next, close: () => controller.abort() }
}
