import { Database } from 'bun:sqlite'
import { afterEach, describe, expect, test } from 'bun:test'
import { existsSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { OrchError } from '../../src/core/errors.ts'
import { STATE_DB } from '../../src/core/home.ts'
import { migrate, openDatabase, openStore } from '../../src/store/db.ts'
import { kvDelete, kvGet, kvSet } from '../../src/store/kv.ts'
import { MIGRATIONS } from '../../src/store/migrations.ts'
import { tempDir } from '../helpers/cli.ts'

const dirs: Array<{ cleanup: () => void }> = []
function home(): string {
  const dir = tempDir('orch-store-')
  dirs.push(dir)
  return dir.path
}
afterEach(() => {
  for (const dir of dirs.splice(0)) dir.cleanup()
})

describe('openStore', () => {
  test('creates $home/state.db with WAL, foreign keys, busy timeout and FULL sync by default', () => {
    const dir = join(home(), 'nested', 'home')
    const store = openStore(dir)
    expect(existsSync(join(dir, STATE_DB))).toBe(true)
    expect(store.one<{ journal_mode: string }>('PRAGMA journal_mode')?.journal_mode).toBe('wal')
    expect(store.one<{ foreign_keys: number }>('PRAGMA foreign_keys')?.foreign_keys).toBe(1)
    expect(store.one<{ timeout: number }>('PRAGMA busy_timeout')?.timeout).toBe(5000)
    expect(store.one<{ synchronous: number }>('PRAGMA synchronous')?.synchronous).toBe(2) // FULL
    store.close()
  })

  test('synchronous NORMAL is selectable', () => {
    const store = openStore(home(), { synchronous: 'NORMAL' })
    expect(store.one<{ synchronous: number }>('PRAGMA synchronous')?.synchronous).toBe(1)
    store.close()
  })

  test('runs every migration once and records the version', () => {
    const dir = home()
    const latest = MIGRATIONS.at(-1)?.version
    const first = openStore(dir)
    expect(first.version).toBe(latest as number)
    first.close()
    const again = openStore(dir)
    expect(migrate(again, MIGRATIONS)).toBe(0)
    again.close()
  })

  test('applies only the migrations newer than the file, in order', () => {
    const store = openDatabase(join(home(), 'x.db'), { migrations: [] })
    const steps = [
      { version: 1, name: 'a', up: 'CREATE TABLE a (x INTEGER)' },
      { version: 2, name: 'b', up: 'CREATE TABLE b (y INTEGER REFERENCES a(x))' },
    ]
    expect(migrate(store, steps.slice(0, 1))).toBe(1)
    expect(migrate(store, steps)).toBe(1)
    expect(store.version).toBe(2)
    const tables = store.all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").map((r) => r.name)
    expect(tables).toEqual(['a', 'b'])
    store.close()
  })

  test('a failing migration rolls back and leaves the version unchanged', () => {
    const store = openDatabase(join(home(), 'x.db'), { migrations: [] })
    const bad = [{ version: 1, name: 'bad', up: 'CREATE TABLE ok (x); THIS IS NOT SQL' }]
    expect(() => migrate(store, bad)).toThrow()
    expect(store.version).toBe(0)
    expect(store.all("SELECT name FROM sqlite_master WHERE name = 'ok'")).toEqual([])
    store.close()
  })

  test('a file from a newer orch is refused with advice', () => {
    const dir = home()
    const raw = new Database(join(dir, STATE_DB))
    raw.exec('PRAGMA user_version = 999')
    raw.close()
    try {
      openStore(dir)
      throw new Error('expected openStore to refuse')
    } catch (error) {
      expect(error).toBeInstanceOf(OrchError)
      expect((error as OrchError).code).toBe('E_STATE_NEWER')
      expect((error as OrchError).hint).toContain('upgrade orch')
    }
  })

  test('a file that is not sqlite is reported as such, not as a crash', () => {
    const dir = home()
    writeFileSync(join(dir, STATE_DB), 'this is not a database, it is a text file that is long enough'.repeat(20))
    expect(() => openStore(dir)).toThrow(/not a usable orch state database/)
  })

  test('an unwritable home is an OrchError naming the directory', () => {
    const file = join(home(), 'file')
    writeFileSync(file, 'x')
    expect(() => openStore(join(file, 'sub'))).toThrow(/cannot create the state directory/)
  })
})

describe('Store statements', () => {
  test('RETURNING rows are read in full, so the WAL still checkpoints to zero', () => {
    const store = openStore(home())
    for (let i = 0; i < 2000; i++) {
      const row = store.one<{ key: string }>('INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?) RETURNING key', [
        `k${i}`,
        'x'.repeat(200),
        i,
      ])
      expect(row?.key).toBe(`k${i}`)
    }
    const walPath = `${store.path}-wal`
    expect(statSync(walPath).size).toBeGreaterThan(0)
    // A second connection checkpoints: it can only truncate if no statement of ours pins a read snapshot.
    const other = new Database(store.path)
    const result = other.query('PRAGMA wal_checkpoint(TRUNCATE)').all() as Array<{ busy: number }>
    other.close()
    expect(result[0]?.busy).toBe(0)
    expect(statSync(walPath).size).toBe(0)
    store.close()
  })

  test('close() finalizes every statement, so the connection really closes and the WAL file goes away', () => {
    const store = openStore(home())
    kvSet(store, 'a', { n: 1 })
    expect(kvGet(store, 'a')).toEqual({ n: 1 })
    const walPath = `${store.path}-wal`
    expect(existsSync(walPath)).toBe(true)
    store.close()
    expect(existsSync(walPath)).toBe(false)
    store.close() // idempotent
  })

  test('write() takes the lock at BEGIN and rolls back on error', () => {
    const store = openStore(home())
    expect(() =>
      store.write(() => {
        kvSet(store, 'inside', 1)
        throw new Error('boom')
      }),
    ).toThrow('boom')
    expect(kvGet(store, 'inside')).toBeUndefined()
    store.write(() => kvSet(store, 'inside', 2))
    expect(kvGet(store, 'inside')).toBe(2)
    expect(kvDelete(store, 'inside')).toBe(true)
    expect(kvDelete(store, 'inside')).toBe(false)
    store.close()
  })

  test('parameters are bound, never interpolated', () => {
    const store = openStore(home())
    const hostile = "x'); DROP TABLE kv; --"
    kvSet(store, hostile, hostile)
    expect(kvGet(store, hostile)).toBe(hostile)
    expect(store.all("SELECT name FROM sqlite_master WHERE name = 'kv'")).toHaveLength(1)
    store.close()
  })

  test('a writer waits (busy_timeout) for another process that holds the write lock, instead of failing', async () => {
    const dir = home()
    openStore(dir).close()
    const holder = Bun.spawn(
      [
        process.execPath,
        '-e',
        `const { Database } = require('bun:sqlite')
         const db = new Database(process.argv[1])
         db.exec('BEGIN IMMEDIATE')
         db.exec("INSERT INTO kv (key, value, updated_at) VALUES ('held', '1', 0)")
         console.log('locked')
         setTimeout(() => { db.exec('COMMIT'); db.close() }, 400)`,
        join(dir, STATE_DB),
      ],
      { stdout: 'pipe' },
    )
    const reader = holder.stdout.getReader()
    const first = await reader.read()
    expect(new TextDecoder().decode(first.value)).toContain('locked')
    const store = openStore(dir, { busyTimeoutMs: 5000 })
    const started = performance.now()
    store.write(() => kvSet(store, 'second', 2))
    const waited = performance.now() - started
    expect(waited).toBeGreaterThan(100)
    expect(kvGet(store, 'held')).toBe(1)
    expect(kvGet(store, 'second')).toBe(2)
    store.close()
    await holder.exited
  })

  test('processes that create the same new state.db at once all open it (the WAL switch is retried)', async () => {
    // SQLite does not call the busy handler for `journal_mode = WAL`. Without the retry, five rounds of six
    // processes aligned to the same instant fail in every run (one to three SQLITE_BUSY on this machine).
    // Each process loads the module, then spins until the same instant, so the opens really overlap.
    const opener = `const { openStore } = require(${JSON.stringify(join(import.meta.dir, '../../src/store/db.ts'))})
      while (Date.now() < Number(process.argv[2]));
      try { openStore(process.argv[1]).close(); console.log('ok') } catch (error) { console.log(error.message) }`
    const outcomes: string[] = []
    for (let round = 0; round < 5; round++) {
      const dir = join(home(), 'fresh')
      const at = String(Date.now() + 250)
      const procs = Array.from({ length: 6 }, () => Bun.spawn([process.execPath, '-e', opener, dir, at], { stdout: 'pipe' }))
      for (const proc of procs) outcomes.push((await new Response(proc.stdout).text()).trim())
    }
    expect(outcomes.filter((line) => line !== 'ok')).toEqual([])
    expect(outcomes).toHaveLength(30)
  }, 30_000)
})
