/**
 * The state store: one sqlite file, `$ORCH_HOME/state.db`, in WAL mode. Every statement goes through
 * `Store`, which caches and tracks prepared statements so that `close()` can finalize them all: bun:sqlite
 * leaves the connection half-open (the WAL file stays) when it is closed with live statements. Statements
 * with RETURNING are read with `.all()`, never `.get()`, which can leave the statement un-reset and pin
 * the WAL so it never checkpoints.
 */
import { Database, type SQLQueryBindings, type Statement } from 'bun:sqlite'
import { mkdirSync } from 'node:fs'
import { OrchError } from '../core/errors.ts'
import { stateDbPath } from '../core/home.ts'
import { MIGRATIONS, type Migration } from './migrations.ts'

/** Positional (`?`) parameters, or one object of named (`$name`) parameters. */
export type Params = SQLQueryBindings[] | Record<string, string | number | bigint | boolean | null>

export interface OpenOptions {
  /** FULL: every commit is fsynced (the default for task state). NORMAL: fsync at checkpoints only. */
  synchronous?: 'FULL' | 'NORMAL'
  busyTimeoutMs?: number
  migrations?: readonly Migration[]
  readonly?: boolean
}

export class Store {
  readonly path: string
  readonly db: Database
  private readonly statements = new Map<string, Statement>()
  private closed = false

  constructor(path: string, db: Database) {
    this.path = path
    this.db = db
  }

  /** A cached prepared statement; SQL text is the key, parameters are always bound, never interpolated. */
  prepare(sql: string): Statement {
    let statement = this.statements.get(sql)
    if (!statement) {
      statement = this.db.prepare(sql)
      this.statements.set(sql, statement)
    }
    return statement
  }

  run(sql: string, params: Params = []): { changes: number; lastInsertRowid: number | bigint } {
    return this.prepare(sql).run(...bind(params))
  }

  all<T>(sql: string, params: Params = []): T[] {
    return this.prepare(sql).all(...bind(params)) as T[]
  }

  /** First row or undefined. Read through `.all()`, so a RETURNING statement is always stepped to its end. */
  one<T>(sql: string, params: Params = []): T | undefined {
    return this.all<T>(sql, params)[0]
  }

  /** A write transaction that takes the write lock at BEGIN (IMMEDIATE), so it never fails half-way on SQLITE_BUSY. */
  write<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate()
  }

  /** Schema version recorded in the file (PRAGMA user_version). */
  get version(): number {
    return this.one<{ user_version: number }>('PRAGMA user_version')?.user_version ?? 0
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    for (const statement of this.statements.values()) statement.finalize()
    this.statements.clear()
    this.db.close()
  }
}

function bind(params: Params): SQLQueryBindings[] {
  return Array.isArray(params) ? params : [params as SQLQueryBindings]
}

/** Open (creating if needed) `$home/state.db`, set pragmas and bring the schema up to date. */
export function openStore(home: string, options: OpenOptions = {}): Store {
  try {
    mkdirSync(home, { recursive: true })
  } catch (cause) {
    throw new OrchError(`cannot create the state directory ${home}: ${(cause as Error).message}`, {
      code: 'E_STATE_DIR',
      hint: 'pass a writable directory with --home or ORCH_HOME',
      cause,
    })
  }
  return openDatabase(stateDbPath(home), options)
}

export function openDatabase(path: string, options: OpenOptions = {}): Store {
  let db: Database
  try {
    db = new Database(path, { create: !options.readonly, readonly: options.readonly ?? false, strict: true })
  } catch (cause) {
    throw new OrchError(`cannot open ${path}: ${(cause as Error).message}`, {
      code: 'E_STATE_DB',
      hint: 'check the path and its permissions',
      cause,
    })
  }
  const store = new Store(path, db)
  try {
    applyPragmas(store, options)
    if (!options.readonly) migrate(store, options.migrations ?? MIGRATIONS)
  } catch (error) {
    store.close()
    if (error instanceof OrchError) throw error
    throw new OrchError(`${path} is not a usable orch state database: ${(error as Error).message}`, {
      code: 'E_STATE_DB',
      hint: 'move the file aside (orch will create a new one) or point --home at another directory',
      cause: error,
    })
  }
  return store
}

function applyPragmas(store: Store, options: OpenOptions): void {
  const busyTimeoutMs = Math.trunc(options.busyTimeoutMs ?? 5000)
  store.db.exec(`PRAGMA busy_timeout = ${busyTimeoutMs}`)
  if (!options.readonly) enableWal(store, busyTimeoutMs)
  store.db.exec(`PRAGMA synchronous = ${options.synchronous === 'NORMAL' ? 'NORMAL' : 'FULL'}`)
  store.db.exec('PRAGMA foreign_keys = ON')
}

/**
 * Switch a file to WAL. SQLite does not call the busy handler for this switch, so two processes creating the
 * same new file at once can get SQLITE_BUSY here however long busy_timeout is: retry within that timeout.
 */
function enableWal(store: Store, busyTimeoutMs: number): void {
  const deadline = Date.now() + busyTimeoutMs
  for (let pause = 1; ; pause = Math.min(pause * 2, 50)) {
    try {
      if (store.one<{ journal_mode: string }>('PRAGMA journal_mode')?.journal_mode === 'wal') return
      store.db.exec('PRAGMA journal_mode = WAL')
      return
    } catch (error) {
      if ((error as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() >= deadline) throw error
      Bun.sleepSync(pause)
    }
  }
}

/** Apply, in order and each in its own IMMEDIATE transaction, every migration newer than the file. */
export function migrate(store: Store, migrations: readonly Migration[]): number {
  const latest = migrations.at(-1)?.version ?? 0
  const current = store.version
  if (current > latest) {
    throw new OrchError(`${store.path} has schema version ${current}, newer than this orch knows (${latest})`, {
      code: 'E_STATE_NEWER',
      hint: 'upgrade orch, or use another --home for this version',
    })
  }
  let applied = 0
  for (const migration of migrations) {
    if (migration.version <= current) continue
    const ran = store.write(() => {
      // Another process may have migrated since `current` was read: the write lock makes this check final.
      if (store.version >= migration.version) return false
      store.db.exec(migration.up)
      // PRAGMA takes no bound parameters; the version is an integer from our own table.
      store.db.exec(`PRAGMA user_version = ${Math.trunc(migration.version)}`)
      return true
    })
    if (ran) applied++
  }
  return applied
}
