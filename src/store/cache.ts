/**
 * The LLM response cache (`infrastructure_system.llm_orchestration.caching`): a finished chat, generate or
 * embed answer stored under the hash of its canonical request, so the same deterministic request is answered
 * without a model call. Two backends: `sqlite` (its own file at `cache_path`, shared by every orch process
 * on the machine, and what `orch cache stats|clear` read) and `memory` (an LRU inside one process).
 * `get` is synchronous and cheap: one primary-key lookup, counters kept in memory.
 */
import { isAbsolute, resolve } from 'node:path'
import type { OrchConfig } from '../config/schema.ts'
import { ExitCode, OrchError } from '../errors.ts'
import type { CacheKind } from './cache-key.ts'
import { memoryCache } from './cache-memory.ts'
import { sqliteCache } from './cache-sqlite.ts'

export type { CacheableRequest, CacheKind, CacheMode } from './cache-key.ts'
export { cacheKey, canonicalRequest, isCacheable, modelAliases, requestKind } from './cache-key.ts'
export { memoryCache } from './cache-memory.ts'
export { CACHE_MIGRATIONS, sqliteCache } from './cache-sqlite.ts'

export type CachingConfig = OrchConfig['infrastructure_system']['llm_orchestration']['caching']

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

/** The configured cache, or undefined when caching is off. Relative `cache_path`s resolve against `cwd`. */
export function createCache(caching: CachingConfig, cwd: string = process.cwd()): ResponseCache | undefined {
  if (!caching.enabled) return undefined
  switch (caching.cache_backend) {
    case 'sqlite':
      return sqliteCache(resolveCachePath(caching.cache_path, cwd), caching.cache_ttl_seconds)
    case 'memory':
      return memoryCache({ maxEntries: caching.max_entries, maxBytes: caching.max_bytes, ttlSeconds: caching.cache_ttl_seconds })
    case 'redis':
      throw redisCacheUnavailable()
  }
}

export function redisCacheUnavailable(): OrchError {
  return new OrchError('cache_backend "redis" is not available yet: it comes with the distributed (multi-machine) work', {
    code: 'E_CACHE_BACKEND',
    exitCode: ExitCode.usage,
    hint: 'set infrastructure_system.llm_orchestration.caching.cache_backend to sqlite (shared by the processes of one machine) or memory',
  })
}

/** `cache_path` as an absolute path; `:memory:` (a private sqlite database) stays as it is. */
export function resolveCachePath(path: string, cwd: string = process.cwd()): string {
  return path === ':memory:' || isAbsolute(path) ? path : resolve(cwd, path)
}
