/** What every response cache is: its entries, its statistics, and the calls both backends answer. */
import type { CacheKind } from './key.ts'

export interface CachedValue {
  kind: CacheKind
  model: string
  /** The final ChatChunk or GenerateChunk (`done: true`, the whole answer in it), or the EmbedResponse. */
  value: unknown
  /** When it was stored, ms since the epoch. */
  created_at: number
}

export interface CacheStats {
  backend: 'sqlite' | 'memory'
  entries: number
  /** Bytes of stored responses (UTF-8 JSON), not the size of the file. */
  bytes: number
  hits: number
  misses: number
  sets: number
  evictions: number
  expired: number
  oldest_at: number | null
  newest_at: number | null
  path?: string
}

export interface ClearOptions {
  /** Only entries past their TTL. */
  expiredOnly?: boolean
  /** Only entries of this model (`llama3.2` and `llama3.2:latest` count as one). */
  model?: string
}

export interface ResponseCache {
  /** The entry, or undefined on a miss. An expired entry is a miss, and is dropped. */
  get(key: string): CachedValue | undefined
  set(key: string, entry: Omit<CachedValue, 'created_at'>): void
  stats(): CacheStats
  /** Remove entries; returns how many. */
  clear(options?: ClearOptions): number
  close(): void
}
