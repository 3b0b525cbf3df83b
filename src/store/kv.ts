/**
 * A small typed key-value table in state.db, for facts that need no table of their own. The one writer of
 * the `kv` table: values are stored as JSON.
 */
import type { Store } from './db.ts'

/** Whether a key is set, whatever its value holds (also a value written before values were JSON). */
export function kvHas(store: Store, key: string): boolean {
  return store.one('SELECT 1 AS x FROM kv WHERE key = ?', [key]) !== undefined
}

export function kvGet<T>(store: Store, key: string): T | undefined {
  const row = store.one<{ value: string }>('SELECT value FROM kv WHERE key = ?', [key])
  return row ? (JSON.parse(row.value) as T) : undefined
}

export function kvSet(store: Store, key: string, value: unknown, now = Date.now()): void {
  store.run(
    'INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at',
    [key, JSON.stringify(value), now],
  )
}

export function kvDelete(store: Store, key: string): boolean {
  return store.run('DELETE FROM kv WHERE key = ?', [key]).changes > 0
}
