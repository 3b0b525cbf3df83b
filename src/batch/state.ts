/**
 * Processed-batch state in state.db (`batches`, migration 5), keyed by the batch folder's absolute path, as
 * a `processed.json` list is. A `processed.json` found beside the inputs (`<inputs_root>/../state/`) is
 * imported once.
 */
import { existsSync, readFileSync } from 'node:fs'
import { basename, isAbsolute } from 'node:path'
import { logger } from '../core/log.ts'
import type { Store } from '../store/db.ts'
import { kvHas, kvSet } from '../store/kv.ts'

export interface BatchRecord {
  path: string
  name: string
  processed_at: number
  exit_status: number
  summary: unknown
  error: string | null
  result_path: string | null
}

interface Row extends Omit<BatchRecord, 'summary'> {
  summary: string | null
}

/**
 * Set once a `processed.json` was imported; its value is the file's path, as JSON. Only its presence is
 * read, so a state.db whose value is the bare path (written before the kv table held JSON) reads the same.
 */
const IMPORTED_KEY = 'batch.processed_json_imported'

const fromRow = (row: Row): BatchRecord => ({ ...row, summary: row.summary === null ? null : JSON.parse(row.summary) })

export function isProcessed(store: Store, path: string): boolean {
  return store.one('SELECT 1 AS x FROM batches WHERE path = ?', [path]) !== undefined
}

export function listProcessed(store: Store): BatchRecord[] {
  return store.all<Row>('SELECT * FROM batches ORDER BY processed_at DESC, path').map(fromRow)
}

export function markProcessed(store: Store, record: BatchRecord): void {
  store.run(
    `INSERT OR REPLACE INTO batches (path, name, processed_at, exit_status, summary, error, result_path)
     VALUES (?, ?, ?, ?, ?, ?, ?)`,
    [
      record.path,
      record.name,
      record.processed_at,
      record.exit_status,
      record.summary === null || record.summary === undefined ? null : JSON.stringify(record.summary),
      record.error,
      record.result_path,
    ],
  )
}

/** Forget a batch (by name or absolute path) so the next tick runs it again; how many rows went. */
export function forgetBatch(store: Store, nameOrPath: string): number {
  return store.run('DELETE FROM batches WHERE name = ? OR path = ?', [nameOrPath, nameOrPath]).changes
}

/**
 * Import a `processed.json` (a JSON list of absolute paths) once per state.db: a later edit of the
 * file, or a `reset`, is not undone by importing it again. Returns how many paths were new.
 */
export function importProcessedJson(store: Store, file: string, now: number): number {
  if (!existsSync(file)) return 0
  if (kvHas(store, IMPORTED_KEY)) return 0
  let paths: unknown
  try {
    paths = JSON.parse(readFileSync(file, 'utf8'))
  } catch (error) {
    logger('batch').warn(`ignoring ${file}: not a JSON list of paths (${(error as Error).message})`)
    return 0
  }
  if (!Array.isArray(paths)) {
    logger('batch').warn(`ignoring ${file}: expected a JSON list of absolute paths`)
    return 0
  }
  return store.write(() => {
    let added = 0
    for (const path of paths) {
      if (typeof path !== 'string' || !isAbsolute(path)) continue
      const inserted = store.run(
        `INSERT OR IGNORE INTO batches (path, name, processed_at, exit_status, summary, error, result_path)
         VALUES (?, ?, ?, 0, NULL, NULL, NULL)`,
        [path, basename(path), now],
      )
      added += inserted.changes
    }
    kvSet(store, IMPORTED_KEY, file, now)
    return added
  })
}
