/**
 * The LLM response cache (`infrastructure_system.llm_orchestration.caching`): a finished chat, generate or
 * embed answer stored under the hash of its canonical request, so the same deterministic request is answered
 * without a model call. Two backends: `sqlite` (its own file at `cache_path`, shared by every orch process
 * on the machine, and what `orch cache stats|clear` read) and `memory` (an LRU inside one process).
 * `get` is synchronous and cheap: one primary-key lookup, counters kept in memory.
 */
import { isAbsolute, resolve } from 'node:path'
import type { OrchConfig } from '../config/schema.ts'
import { ExitCode, OrchError } from '../core/errors.ts'
import { memoryCache } from './memory.ts'
import { sqliteCache } from './sqlite.ts'
import type { ResponseCache } from './types.ts'

export type { CacheableRequest, CacheKind, CacheMode } from './key.ts'
export { cacheKey, canonicalRequest, isCacheable, modelAliases, requestKind } from './key.ts'
export { memoryCache } from './memory.ts'
export { CACHE_MIGRATIONS, sqliteCache } from './sqlite.ts'
export type { CachedValue, CacheStats, ClearOptions, ResponseCache } from './types.ts'

export type CachingConfig = OrchConfig['infrastructure_system']['llm_orchestration']['caching']

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
