/** A small typed key-value table in state.db, for facts that need no table of their own. */
import type { Store } from './db.ts'

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
