/**
 * What the task queue reads does not grow with its depth. The counts cost a few rows: counts(), GET /stats
 * and GET /metrics read the task_counts table the queue keeps, never the tasks table. A page of a list is
 * a few range reads of an index, in order, each stopping after `limit` entries. Checked on the statements they really run
 * (every one goes through Store.prepare, recorded here) with EXPLAIN QUERY PLAN, not by timing. Also: a file
 * made before the counts were kept gets them counted once when it is opened.
 */
import { afterEach, describe, expect, test } from 'bun:test'
import { openStore, type Store } from '../../src/store/db.ts'
import { MIGRATIONS } from '../../src/store/migrations.ts'
import * as sql from '../../src/tasks/sql.ts'
import { SqliteTaskQueue } from '../../src/tasks/sqlite.ts'
import { baseOptions, T0 } from '../contract/task-queue-fixture.ts'
import { tempDir } from '../helpers/cli.ts'
import { startTestServe, type TestServe } from '../helpers/serve.ts'

const STATES = ['queued', 'running', 'done', 'failed', 'cancelled']
const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** Every SQL text `store` prepares while `fn` runs (a cached statement is still looked up through prepare). */
async function statementsOf(store: Store, fn: () => unknown): Promise<string[]> {
  const seen = new Set<string>()
  const prepare = store.prepare.bind(store)
  store.prepare = (text: string) => {
    seen.add(text)
    return prepare(text)
  }
  try {
    await fn()
  } finally {
    store.prepare = prepare
  }
  return [...seen]
}

/** The query plan's lines of one statement (EXPLAIN QUERY PLAN with NULL for every parameter). */
function plan(store: Store, text: string): string[] {
  const params = store.prepare(text).paramsCount
  return store.all<{ detail: string }>(`EXPLAIN QUERY PLAN ${text}`, Array(params).fill(null)).map((r) => r.detail)
}

/** No plan line of these statements reads the tasks table or one of its indexes; task_counts holds one row per state. */
function expectReadsOnlyCounts(store: Store, statements: string[]): void {
  const touching = statements.filter((text) => /\btask/.test(text))
  expect(touching.length).toBeGreaterThan(0)
  for (const text of touching) {
    const lines = plan(store, text)
    expect({ text, lines: lines.filter((line) => /\btasks\b/.test(line)) }).toEqual({ text, lines: [] })
  }
  expect(store.one<{ n: number }>('SELECT COUNT(*) AS n FROM task_counts')?.n).toBe(STATES.length)
}

/** `n` tasks in every state but queued (which gets 2n), in three tenants, so a scan would have rows to read. */
async function fill(tasks: SqliteTaskQueue, n: number): Promise<void> {
  await tasks.submitMany(Array.from({ length: n * 6 }, (_, i) => ({ type: 'x', tenant: `t${i % 3}` })))
  const claimed = tasks.claim('w1', n * 4)
  for (const t of claimed.slice(0, n)) tasks.complete(t.id, 'w1', { ok: 1 })
  for (const t of claimed.slice(n, 2 * n)) tasks.fail(t.id, 'w1', { code: 'E_X', message: 'x', retryable: false })
  for (const t of claimed.slice(2 * n, 3 * n)) tasks.cancel(t.id)
}

describe('task counts read a row per state', () => {
  test('counts() runs one statement, which reads task_counts only, and its figures are a real COUNT', async () => {
    const dir = tempDir('orch-counts-')
    cleanups.push(dir.cleanup)
    const store = openStore(dir.path, { synchronous: 'NORMAL' })
    cleanups.push(() => store.close())
    const tasks = new SqliteTaskQueue(store, baseOptions({ t: T0 }))
    await fill(tasks, 50)
    let counts: Record<string, number> = {}
    const statements = await statementsOf(store, () => {
      counts = tasks.counts()
    })
    expect(statements).toEqual([sql.COUNTS])
    expectReadsOnlyCounts(store, statements)
    expect(counts).toEqual({ queued: 100, running: 50, done: 50, failed: 50, cancelled: 50 })
    // The same plan check holds for the queued-per-tenant figures read at open and at prune.
    expectReadsOnlyCounts(store, [sql.QUEUED_BY_TENANT])
  })

  test('GET /stats and GET /metrics read task_counts, and of the tasks table only the first due time (one index seek)', async () => {
    let serve: TestServe | undefined
    serve = await startTestServe()
    cleanups.push(() => serve?.stop())
    const { store, deps, runner } = serve.server
    // The counts must stay as filled: nothing claims in the background.
    await runner.stop()
    await fill(deps.tasks as SqliteTaskQueue, 20)
    for (const path of ['/stats', '/metrics']) {
      let body = ''
      const statements = await statementsOf(store, async () => {
        const response = await serve.fetch(path)
        expect(response.status).toBe(200)
        body = await response.text()
      })
      // /metrics also reports how long the first due task has waited: MIN(run_after) of the queued ones, which
      // SQLite answers from the tasks_due index in one seek at any depth. Every other statement reads counts.
      const seek = statements.filter((text) => text === sql.NEXT_RUN_AFTER)
      expect(seek.length).toBe(path === '/metrics' ? 1 : 0)
      for (const text of seek) {
        const lines = plan(store, text).filter((line) => /\btasks\b/.test(line))
        expect(lines).toEqual([expect.stringMatching(/^SEARCH tasks USING COVERING INDEX tasks_due\b/)])
      }
      expectReadsOnlyCounts(
        store,
        statements.filter((text) => text !== sql.NEXT_RUN_AFTER),
      )
      if (path === '/stats')
        expect((JSON.parse(body) as { tasks: unknown }).tasks).toEqual({ queued: 40, running: 20, done: 20, failed: 20, cancelled: 20 })
      else expect(body).toMatch(/^orch_tasks\{[^}]*state="queued"\} 40$/m)
    }
  })
})

describe('a page of a list reads a few index ranges, in order, whatever the depth', () => {
  test('every filter (none, state, tenant, both), first page or after a cursor: range reads of an index, each stopping at the limit', async () => {
    const dir = tempDir('orch-list-plan-')
    cleanups.push(dir.cleanup)
    const store = openStore(dir.path, { synchronous: 'NORMAL' })
    cleanups.push(() => store.close())
    const tasks = new SqliteTaskQueue(store, baseOptions({ t: T0 }))
    await fill(tasks, 10)
    const cursor = tasks.list({ limit: 2 }).next_cursor as string
    for (const state of [undefined, 'running', 'queued'] as const) {
      for (const tenant of [undefined, 't1']) {
        for (const after of [undefined, cursor]) {
          const query = { state, tenant, cursor: after, limit: 3 }
          const statements = await statementsOf(store, () => tasks.list(query))
          // With a state: one read of its range. Without: the keys of each state's range, then the page's rows by id.
          expect(statements).toHaveLength(state ? 1 : 2)
          for (const text of statements) {
            const lines = plan(store, text).filter((line) => /\btasks\b/.test(line))
            const range =
              text === sql.SELECT_PAGE
                ? /^SEARCH tasks USING INDEX sqlite_autoindex_tasks_1 \(id=\?\)$/
                : /^SEARCH tasks USING (COVERING )?INDEX tasks_(tenant_)?state_created \(/
            expect({ text, lines }).toEqual({ text, lines: [expect.stringMatching(range)] })
            if (text !== sql.SELECT_PAGE) expect(plan(store, text).some((line) => line.includes('TEMP B-TREE'))).toBe(false)
          }
          // And it answers what a full read of the table says.
          const page = tasks.list(query).tasks.map((t) => t.id)
          const all = store
            .all<{ id: string; state: string; tenant: string; created_at: number }>(
              'SELECT id, state, tenant, created_at FROM tasks ORDER BY created_at DESC, id DESC',
            )
            .filter((t) => (!state || t.state === state) && (!tenant || t.tenant === tenant))
          const [afterCreated, afterId] = after ? sql.decodeCursor(after) : [Number.POSITIVE_INFINITY, '']
          const expected = all.filter((t) => t.created_at < afterCreated || (t.created_at === afterCreated && t.id < afterId)).slice(0, 3)
          expect(page).toEqual(expected.map((t) => t.id))
        }
      }
    }
  })
})

describe('a state file made before the counts were kept', () => {
  test('is counted once when it is opened, and the counts then follow every change', async () => {
    const dir = tempDir('orch-counts-old-')
    cleanups.push(dir.cleanup)
    const before = MIGRATIONS.filter((m) => m.version < 6)
    const old = openStore(dir.path, { migrations: before, synchronous: 'NORMAL' })
    // Rows written the way the queue of that version wrote them: nothing counted them.
    old.write(() => {
      for (let i = 0; i < 30; i++) {
        old.run(
          `INSERT INTO tasks (id, type, state, max_attempts, run_after, claim_rank, tenant, created_at, updated_at)
           VALUES (?, 'x', ?, 3, 0, 0, ?, ?, ?)`,
          [`task_${i}`, STATES[i % 5] as string, i % 2 ? 'a' : 'b', T0 + i, T0 + i],
        )
      }
    })
    expect(old.version).toBe(5)
    old.close()
    const store = openStore(dir.path, { synchronous: 'NORMAL' })
    cleanups.push(() => store.close())
    expect(store.version).toBe(MIGRATIONS.at(-1)?.version as number)
    const tasks = new SqliteTaskQueue(store, baseOptions({ t: T0 + 100 }))
    expect(tasks.counts()).toEqual({ queued: 6, running: 6, done: 6, failed: 6, cancelled: 6 })
    expect(tasks.queuedCounts()).toEqual({ total: 6, byTenant: { a: 3, b: 3 } })
    await tasks.submit({ type: 'x', tenant: 'c' })
    tasks.claim('w', 2)
    expect(tasks.counts()).toEqual({ queued: 5, running: 8, done: 6, failed: 6, cancelled: 6 })
  })
})
