/**
 * Engine benchmarks. Each figure is compared with a baseline measured in the same run:
 *  - lifecycles_per_s: durable tasks submit → claim → complete through the runner and scheduler, against an
 *    in-process zero-latency backend (synchronous FULL, the default), vs sqlite_baseline_per_s: a bare
 *    claim + complete on a one-table sqlite file with the same pragmas.
 *  - slot_utilisation: share of backend slot-time busy while 8 slots (2 fake Ollama servers × 4) are
 *    saturated by 50 ms calls over real HTTP; goal ≥ 0.95.
 *  - embed_coalescing_gain: embed throughput with batching ÷ without, against a fake whose cost is per call
 *    (20 ms, whatever the input size); goal ≥ 3.
 *  - cache_hit_p99_ms: a cached chat answered by Engine.chatOnce (key hashing + sqlite lookup), vs a bare
 *    primary-key SELECT; goal < 1.
 * Last line: one JSON object with every figure. Usage: bun scripts/bench/engine.ts [--tasks 5000]
 */
import { Database } from 'bun:sqlite'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { Backend, ChatChunk } from '../../src/backends/types.ts'
import { sqliteCache } from '../../src/cache/index.ts'
import { defaultConfig } from '../../src/config/schema.ts'
import { configureLogging } from '../../src/core/log.ts'
import { Engine } from '../../src/scheduler/engine.ts'
import { openStore } from '../../src/store/db.ts'
import { taskQueueOptions } from '../../src/tasks/queue.ts'
import { TaskRunner } from '../../src/tasks/runner.ts'
import { SqliteTaskQueue } from '../../src/tasks/sqlite.ts'
import { startFakeOllama } from '../../test/helpers/fake-ollama.ts'

const { values } = parseArgs({ args: process.argv.slice(2), options: { tasks: { type: 'string', default: '5000' } } })
const TASKS = Number(values.tasks)
configureLogging({ level: 'error' })
const dir = mkdtempSync(join(tmpdir(), 'orch-bench-engine-'))

type Config = ReturnType<typeof defaultConfig>
function config(tweak: (c: Config) => void = () => {}): Config {
  const c = defaultConfig()
  c.runtime = { ollama: { concurrency: 1000 } }
  c.infrastructure_system.distributed_simulation.agent_runner_concurrency = 1000
  c.pool_max_queue_size = 100_000
  c.pool_queue_timeout = 600_000
  tweak(c)
  return c
}

/** Answers at once, in process: what remains is orch's own cost. */
function instantBackend(name: string): Backend {
  const chunk = (model: string): ChatChunk => ({ model, created_at: '', message: { role: 'assistant', content: 'ok' }, done: true })
  return {
    name,
    type: 'ollama',
    url: `instant://${name}`,
    async *chat(r) {
      yield chunk(r.model)
    },
    async *generate(r) {
      yield { model: r.model, created_at: '', response: 'ok', done: true }
    },
    embed: async (r) => ({ model: r.model, embeddings: [[1]] }),
    listModels: async () => [],
    loadedModels: async () => [],
    health: async () => ({ ok: true, latency_ms: 0 }),
  }
}

async function lifecycles(): Promise<number> {
  const c = config((x) => {
    x.backends = [{ name: 'instant', type: 'ollama', url: 'http://127.0.0.1:1', concurrency: 64 }]
  })
  const store = openStore(join(dir, 'lifecycles'), { synchronous: 'FULL' })
  const tasks = new SqliteTaskQueue(store, taskQueueOptions(c))
  const engine = new Engine({ config: c, backends: [instantBackend('instant')], cache: null, healthIntervalMs: 0 })
  const runner = new TaskRunner({ tasks, engine, owner: 'bench:1:run', leaseMs: c.tasks.lease_ms, prefetch: 64 })
  runner.start()
  const started = performance.now()
  await tasks.submitMany(
    Array.from({ length: TASKS }, (_, i) => ({
      type: 'chat',
      model: 'm',
      payload: { model: 'm', messages: [{ role: 'user', content: `t${i}` }] },
    })),
  )
  while (tasks.counts().done < TASKS) await Bun.sleep(5)
  const perSecond = TASKS / ((performance.now() - started) / 1000)
  await runner.stop()
  await engine.close()
  store.close()
  return perSecond
}

function sqliteBaseline(): number {
  const db = new Database(join(dir, 'baseline.db'), { create: true, strict: true })
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL')
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, state TEXT NOT NULL, owner TEXT, result TEXT)')
  db.exec('CREATE INDEX t_state ON t (state, id)')
  const insert = db.prepare("INSERT INTO t (state) VALUES ('queued')")
  db.transaction(() => {
    for (let i = 0; i < TASKS; i++) insert.run()
  })()
  const claim = db.prepare(
    "UPDATE t SET state = 'running', owner = ? WHERE id = (SELECT id FROM t WHERE state = 'queued' ORDER BY id LIMIT 1) RETURNING id",
  )
  const complete = db.prepare("UPDATE t SET state = 'done', result = ? WHERE id = ? AND owner = ?")
  const started = performance.now()
  for (let i = 0; i < TASKS; i++) {
    const row = claim.all('o')[0] as { id: number }
    complete.run('{"ok":true}', row.id, 'o')
  }
  const perSecond = TASKS / ((performance.now() - started) / 1000)
  for (const s of [insert, claim, complete]) s.finalize()
  db.close()
  return perSecond
}

async function slotUtilisation(): Promise<number> {
  const servers = await Promise.all([startFakeOllama({ latencyMs: 50 }), startFakeOllama({ latencyMs: 50 })])
  const c = config((x) => {
    x.backends = servers.map((s, i) => ({ name: `f${i}`, type: 'ollama' as const, url: s.url, concurrency: 4 }))
  })
  const engine = new Engine({ config: c, cache: null, healthIntervalMs: 0 })
  const requests = 400
  const started = performance.now()
  await Promise.all(
    Array.from({ length: requests }, (_, i) => engine.chatOnce({ model: 'llama3.2', messages: [{ role: 'user', content: `q${i}` }] })),
  )
  const wall = performance.now() - started
  const busy = servers.flatMap((s) => s.calls).reduce((sum, call) => sum + ((call.endedAt ?? call.startedAt) - call.startedAt), 0)
  await engine.close()
  for (const s of servers) await s.stop()
  return busy / (8 * wall)
}

async function embedThroughput(batching: boolean): Promise<number> {
  const server = await startFakeOllama({ callCostMs: 20 })
  const c = config((x) => {
    x.backends = [{ name: 'e', type: 'ollama', url: server.url, concurrency: 4 }]
    x.infrastructure_system.llm_orchestration.batching.enabled = batching
  })
  const engine = new Engine({ config: c, cache: null, healthIntervalMs: 0 })
  const requests = 1000
  const started = performance.now()
  await Promise.all(Array.from({ length: requests }, (_, i) => engine.embed({ model: 'nomic-embed-text', input: `text ${i}` })))
  const perSecond = requests / ((performance.now() - started) / 1000)
  await engine.close()
  await server.stop()
  return perSecond
}

async function cacheHits(): Promise<{ p50: number; p99: number; baselineP99: number }> {
  const path = join(dir, 'cache.db')
  const cache = sqliteCache(path, 3600)
  const c = config((x) => {
    x.backends = [{ name: 'instant', type: 'ollama', url: 'http://127.0.0.1:1', concurrency: 4 }]
  })
  const engine = new Engine({ config: c, backends: [instantBackend('instant')], cache, healthIntervalMs: 0 })
  const request = { model: 'm', messages: [{ role: 'user' as const, content: 'x'.repeat(2000) }], options: { temperature: 0 } }
  await engine.chatOnce(request)
  const samples: number[] = []
  for (let i = 0; i < 20_000; i++) {
    const t = Bun.nanoseconds()
    await engine.chatOnce(request)
    samples.push((Bun.nanoseconds() - t) / 1e6)
  }
  await engine.close()
  const db = new Database(path, { readonly: true })
  const key = (db.query('SELECT key FROM cache_entries LIMIT 1').get() as { key: string } | null)?.key ?? ''
  const select = db.prepare('SELECT value FROM cache_entries WHERE key = ?')
  const base: number[] = []
  for (let i = 0; i < 20_000; i++) {
    const t = Bun.nanoseconds()
    select.all(key)
    base.push((Bun.nanoseconds() - t) / 1e6)
  }
  select.finalize()
  db.close()
  const q = (s: number[], p: number) => [...s].sort((a, b) => a - b)[Math.floor(p * s.length)] as number
  return { p50: q(samples, 0.5), p99: q(samples, 0.99), baselineP99: q(base, 0.99) }
}

const round = (n: number, digits = 3) => Number(n.toPrecision(digits))
const lifecyclesPerS = await lifecycles()
const baselinePerS = sqliteBaseline()
console.log(
  `lifecycles (submit→claim→complete, FULL): ${round(lifecyclesPerS)} /s; bare sqlite claim+complete: ${round(baselinePerS)} /s; ratio ×${round(lifecyclesPerS / baselinePerS)}`,
)
const utilisation = await slotUtilisation()
console.log(`slot utilisation, 8 slots saturated by 50 ms calls over HTTP: ${round(utilisation)} (ideal 1.0)`)
const withBatching = await embedThroughput(true)
const withoutBatching = await embedThroughput(false)
console.log(
  `embeddings/s with coalescing ${round(withBatching)}, without ${round(withoutBatching)}: gain ×${round(withBatching / withoutBatching)}`,
)
const hits = await cacheHits()
console.log(
  `cache hit through Engine.chatOnce: p50 ${round(hits.p50)} ms, p99 ${round(hits.p99)} ms; bare SELECT p99 ${round(hits.baselineP99)} ms`,
)
rmSync(dir, { recursive: true, force: true })
console.log(
  JSON.stringify({
    lifecycles_per_s: round(lifecyclesPerS),
    sqlite_baseline_per_s: round(baselinePerS),
    lifecycle_ratio: round(lifecyclesPerS / baselinePerS),
    slot_utilisation: round(utilisation),
    embed_coalescing_gain: round(withBatching / withoutBatching),
    embed_per_s_batched: round(withBatching),
    embed_per_s_unbatched: round(withoutBatching),
    cache_hit_p50_ms: round(hits.p50),
    cache_hit_p99_ms: round(hits.p99),
    sqlite_select_p99_ms: round(hits.baselineP99),
  }),
)
