/**
 * Fills a state directory with queued tasks through a checkout's own code, so that its schema, indexes and
 * whatever it keeps besides the rows are that checkout's: run with cwd = the checkout, by scripts/bench/queue.ts.
 * `submitMany` in chunks, under synchronous NORMAL (the fill is set-up, not a figure of serve); tasks spread
 * over 4 tenants and 5 priorities. The queue bounds are off.
 *
 *   bun scripts/bench/servers/fill-queue.ts <checkout> <home> <tasks> [chunk]
 * Last line: one JSON object {tasks, seconds, per_s, db_mb}.
 */
import { existsSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'

const [rootArg, home, tasksArg, chunkArg] = process.argv.slice(2)
if (!rootArg || !home || !tasksArg) {
  console.error('usage: fill-queue.ts <checkout> <home> <tasks> [chunk]')
  process.exit(2)
}
const root = resolve(rootArg)
const total = Number(tasksArg)
const chunk = Number(chunkArg ?? 5000)

/** The first of `paths` (relative to the checkout) that exists: the queue's files moved between versions. */
function source(...paths: string[]): string {
  const found = paths.map((p) => join(root, p)).find((p) => existsSync(p))
  if (!found) throw new Error(`${root} has none of ${paths.join(', ')}`)
  return found
}

type Input = { type: string; model: string; payload: unknown; priority: number; tenant: string }
interface Queue {
  submitMany(inputs: Input[]): Promise<unknown[]>
}

const { openStore } = await import(source('src/store/db.ts'))
const { SqliteTaskQueue } = await import(source('src/tasks/sqlite.ts', 'src/store/tasks.ts'))
const { defaultConfig } = await import(source('src/config/schema.ts'))
const queueModule = existsSync(join(root, 'src/tasks/queue.ts')) ? await import(join(root, 'src/tasks/queue.ts')) : {}
const config = defaultConfig()
config.tasks.max_queued = 0
if ('max_queued_per_tenant' in config.tasks) config.tasks.max_queued_per_tenant = 0
const t = config.tasks
const options =
  typeof queueModule.taskQueueOptions === 'function'
    ? queueModule.taskQueueOptions(config)
    : {
        retry: { maxAttempts: t.max_attempts, baseMs: t.retry_base_ms, maxMs: t.retry_max_ms },
        maxStalled: t.max_stalled,
        leaseMs: t.lease_ms,
        agingMs: t.priority_aging_ms,
        maxQueued: 0,
        maxQueuedPerTenant: 0,
      }

const store = openStore(home, { synchronous: 'NORMAL' })
const queue = new SqliteTaskQueue(store, options) as Queue
const started = performance.now()
for (let done = 0; done < total; ) {
  const n = Math.min(chunk, total - done)
  const inputs = Array.from(
    { length: n },
    (_, k): Input => ({
      type: 'generate',
      model: 'llama3.2',
      payload: { model: 'llama3.2', prompt: `fill ${done + k}` },
      priority: (done + k) % 5,
      tenant: `tenant-${(done + k) % 4}`,
    }),
  )
  await queue.submitMany(inputs)
  done += n
}
const seconds = (performance.now() - started) / 1000
store.db.exec('PRAGMA wal_checkpoint(TRUNCATE)')
store.close()
const db = join(home, 'state.db')
const mb = (existsSync(db) ? statSync(db).size : 0) / 2 ** 20
console.log(
  JSON.stringify({ tasks: total, seconds: Number(seconds.toFixed(2)), per_s: Math.round(total / seconds), db_mb: Math.round(mb) }),
)
