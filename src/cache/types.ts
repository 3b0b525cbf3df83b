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
  backend: 'sqlite' | 'memory' | 'redis'
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
  /** redis: the server (without a password). */
  url?: string
  /** redis: lookups and stores of this process that Redis did not answer (each a miss, or an answer not kept). */
  errors?: number
}

export interface ClearOptions {
  /** Only entries past their TTL. */
  expiredOnly?: boolean
  /** Only entries of this model (`llama3.2` and `llama3.2:latest` count as one). */
  model?: string
}

type MaybePromise<T> = T | Promise<T>

/** A response cache: the local ones answer at once, a shared one (redis) with a promise. */
export interface ResponseCache {
  /** The entry, or undefined on a miss. An expired entry is a miss, and is dropped. */
  get(key: string): MaybePromise<CachedValue | undefined>
  set(key: string, entry: Omit<CachedValue, 'created_at'>): MaybePromise<void>
  stats(): MaybePromise<CacheStats>
  /** Remove entries; returns how many. */
  clear(options?: ClearOptions): MaybePromise<number>
  close(): MaybePromise<void>
}

/** A cache inside this machine (sqlite, memory): every call answers synchronously. */
export interface LocalResponseCache extends ResponseCache {
  get(key: string): CachedValue | undefined
  set(key: string, entry: Omit<CachedValue, 'created_at'>): void
  stats(): CacheStats
  clear(options?: ClearOptions): number
  close(): void
}
