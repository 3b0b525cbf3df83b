/**
 * Many machines on one Redis, all real: a redis-server (AOF, appendfsync always) on a free loopback port,
 * two orch serve instances (control planes, no tasks of their own) and orch worker processes spawned from
 * the CLI, running tasks on fake Ollama servers (the real wire format).
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { type ClusterServe, type ClusterWorker, clusterConfig, startClusterServe, startClusterWorker, until } from '../helpers/cluster.ts'
import { type FakeServer, startFakeOllama } from '../helpers/fake-ollama.ts'
import { type RedisServer, startRedis } from '../helpers/redis-server.ts'

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

async function cluster(options: { serves?: number; workers?: number; latencyMs?: number; leaseMs?: number } = {}) {
  const prefix = `cluster${++run}`
  const config = clusterConfig(redis, prefix, (c) => {
    if (options.leaseMs) c.tasks.lease_ms = options.leaseMs
  })
  const fake = await startFakeOllama({ latencyMs: options.latencyMs ?? 2 })
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
      // A task listed on one serve is the task the other serve gets, field for field.
      const listed = ((await (await a.fetch('/tasks?state=done&limit=20')).json()) as any).tasks
      expect(listed).toHaveLength(20)
      for (const t of listed) expect(await task(b, t.id)).toEqual(t)
    },
    T,
  )
})
