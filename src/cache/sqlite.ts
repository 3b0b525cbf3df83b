/**
 * The sqlite response cache: its own file (`cache_path`, never state.db), WAL with synchronous=NORMAL (a
 * lost entry after a power cut only costs a model call). A hit is one primary-key SELECT and no write: the
 * hit/miss counters live in memory and are added to the file's counters row once a second and on close,
 * so every process sharing the file contributes to the same totals.
 */
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { OrchError } from '../core/errors.ts'
import { logger } from '../core/log.ts'
import { openDatabase, type Store } from '../store/db.ts'
import type { Migration } from '../store/migrations.ts'
import type { CacheKind } from './key.ts'
import { modelAliases } from './key.ts'
import type { CacheStats, ClearOptions, LocalResponseCache } from './types.ts'

export const CACHE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'cache',
    up: `
      CREATE TABLE cache_entries (
        key        TEXT PRIMARY KEY,
        kind       TEXT NOT NULL,
        model      TEXT NOT NULL,
        value      TEXT NOT NULL,
        bytes      INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
      );
      CREATE INDEX cache_entries_expires_at ON cache_entries (expires_at);
      CREATE INDEX cache_entries_model ON cache_entries (model);
      CREATE TABLE cache_counters (
        id        INTEGER PRIMARY KEY CHECK (id = 1),
        hits      INTEGER NOT NULL DEFAULT 0,
        misses    INTEGER NOT NULL DEFAULT 0,
        sets      INTEGER NOT NULL DEFAULT 0,
        evictions INTEGER NOT NULL DEFAULT 0,
        expired   INTEGER NOT NULL DEFAULT 0
      );
      INSERT INTO cache_counters (id) VALUES (1);
    `,
  },
]

const FLUSH_INTERVAL_MS = 1000
/** Expired rows nobody asks for again are swept this often, at most SWEEP_BATCH at a time. */
const SWEEP_INTERVAL_MS = 60_000
const SWEEP_BATCH = 1000
/** A write waits at most this long for another process's write lock; then the cache write is skipped. */
const BUSY_TIMEOUT_MS = 250

const SQL = {
  get: 'SELECT kind, model, value, created_at, expires_at FROM cache_entries WHERE key = ?',
  dropExpired: 'DELETE FROM cache_entries WHERE key = ? AND expires_at <= ?',
  set: `INSERT INTO cache_entries (key, kind, model, value, bytes, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (key) DO UPDATE SET kind = excluded.kind, model = excluded.model, value = excluded.value,
        bytes = excluded.bytes, created_at = excluded.created_at, expires_at = excluded.expires_at`,
  flush: `UPDATE cache_counters SET hits = hits + ?, misses = misses + ?, sets = sets + ?, evictions = evictions + ?,
          expired = expired + ? WHERE id = 1`,
  sweep: 'DELETE FROM cache_entries WHERE rowid IN (SELECT rowid FROM cache_entries WHERE expires_at <= ? LIMIT ?)',
  size: `SELECT COUNT(*) AS entries, COALESCE(SUM(bytes), 0) AS bytes, MIN(created_at) AS oldest_at, MAX(created_at) AS newest_at
         FROM cache_entries`,
  counters: 'SELECT hits, misses, sets, evictions, expired FROM cache_counters WHERE id = 1',
} as const

interface Row {
  kind: CacheKind
  model: string
  value: string
  created_at: number
  expires_at: number
}

type Counters = Pick<CacheStats, 'hits' | 'misses' | 'sets' | 'evictions' | 'expired'>
const zero = (): Counters => ({ hits: 0, misses: 0, sets: 0, evictions: 0, expired: 0 })

/** Open (creating it and its directory if needed) the cache file at `path`. */
export function sqliteCache(path: string, ttlSeconds: number, now: () => number = Date.now): LocalResponseCache {
  const store = openCacheFile(path)
  const ttlMs = ttlSeconds * 1000
  const getStatement = store.prepare(SQL.get)
  let pending = zero()
  let dirty = false
  let lastSweep = now()
  let closed = false
  const log = logger('store')

  const count = (name: keyof Counters, n = 1) => {
    pending[name] += n
    dirty = true
  }

  /** Cache writes are best effort: a busy or full disk must never fail the request whose answer we keep. */
  function tryWrite(what: string, fn: () => void): boolean {
    try {
      fn()
      return true
    } catch (error) {
      if ((error as Error).name !== 'SQLiteError') throw error
      log.warn(`response cache ${path}: ${what} skipped: ${(error as Error).message}`)
      return false
    }
  }

  function flush(): void {
    const time = now()
    if (time - lastSweep >= SWEEP_INTERVAL_MS) {
      lastSweep = time
      tryWrite('sweep of expired entries', () => count('expired', store.run(SQL.sweep, [time, SWEEP_BATCH]).changes))
    }
    if (!dirty) return
    const p = pending
    if (tryWrite('counter update', () => store.run(SQL.flush, [p.hits, p.misses, p.sets, p.evictions, p.expired]))) {
      pending = zero()
      dirty = false
    }
  }

  const timer = setInterval(flush, FLUSH_INTERVAL_MS)
  timer.unref()

  return {
    get(key) {
      const row = (getStatement.all(key) as Row[])[0]
      if (row === undefined) {
        count('misses')
        return undefined
      }
      const time = now()
      let value: unknown
      if (row.expires_at > time) {
        try {
          value = JSON.parse(row.value)
        } catch {
          value = undefined // a row damaged outside orch: drop it like an expired one
        }
      }
      if (value === undefined) {
        tryWrite('drop of an expired entry', () => store.run(SQL.dropExpired, [key, Math.max(time, row.expires_at)]))
        count('misses')
        count('expired')
        return undefined
      }
      count('hits')
      return { kind: row.kind, model: row.model, value, created_at: row.created_at }
    },

    set(key, entry) {
      const json = JSON.stringify(entry.value)
      if (json === undefined) throw new TypeError('a cached value must be JSON')
      const time = now()
      const bytes = Buffer.byteLength(json)
      if (tryWrite('write', () => store.run(SQL.set, [key, entry.kind, entry.model, json, bytes, time, time + ttlMs]))) count('sets')
    },

    stats() {
      const size = store.one<{ entries: number; bytes: number; oldest_at: number | null; newest_at: number | null }>(SQL.size)
      const stored = store.one<Counters>(SQL.counters) ?? zero()
      const counters = Object.fromEntries(
        (Object.keys(pending) as Array<keyof Counters>).map((name) => [name, stored[name] + pending[name]]),
      ) as Counters
      return {
        backend: 'sqlite',
        entries: size?.entries ?? 0,
        bytes: size?.bytes ?? 0,
        ...counters,
        oldest_at: size?.oldest_at ?? null,
        newest_at: size?.newest_at ?? null,
        path,
      }
    },

    clear(options: ClearOptions = {}) {
      const where: string[] = []
      const params: Array<string | number> = []
      if (options.expiredOnly) {
        where.push('expires_at <= ?')
        params.push(now())
      }
      if (options.model !== undefined) {
        where.push('model IN (?, ?)')
        params.push(...modelAliases(options.model))
      }
      // Only these fixed fragments are joined; every value is a bound parameter.
      const removed = store.run(`DELETE FROM cache_entries${where.length ? ` WHERE ${where.join(' AND ')}` : ''}`, params).changes
      if (options.expiredOnly) count('expired', removed)
      return removed
    },

    close() {
      if (closed) return
      closed = true
      clearInterval(timer)
      try {
        flush()
      } finally {
        store.close()
      }
    },
  }
}

function openCacheFile(path: string): Store {
  const hint = `it is only a cache: delete ${path} (and any ${path}-wal, ${path}-shm) and orch starts a new one`
  if (path !== ':memory:') {
    try {
      mkdirSync(dirname(path), { recursive: true })
    } catch (cause) {
      throw new OrchError(`cannot create the directory of the response cache ${path}: ${(cause as Error).message}`, {
        code: 'E_CACHE_DB',
        hint: 'point infrastructure_system.llm_orchestration.caching.cache_path at a writable place',
        cause,
      })
    }
  }
  let store: Store | undefined
  try {
    store = openDatabase(path, { synchronous: 'NORMAL', busyTimeoutMs: BUSY_TIMEOUT_MS, migrations: CACHE_MIGRATIONS })
    // Preparing every statement now proves the tables are there (a file of some other program is not).
    for (const sql of Object.values(SQL)) store.prepare(sql)
    return store
  } catch (cause) {
    store?.close()
    const reason = cause instanceof OrchError && cause.cause instanceof Error ? cause.cause.message : (cause as Error).message
    throw new OrchError(`the response cache ${path} cannot be opened or is not a cache file: ${reason}`, {
      code: 'E_CACHE_DB',
      hint,
      cause,
      details: { path },
    })
  }
}
