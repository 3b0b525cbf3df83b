/**
 * The LLM response cache (`infrastructure_system.llm_orchestration.caching`): a finished chat, generate or
 * embed answer stored under the hash of its canonical request, so the same deterministic request is answered
 * without a model call. Three backends: `sqlite` (its own file at `cache_path`, shared by every orch process
 * on the machine, and what `orch cache stats|clear` read), `memory` (an LRU inside one process) and `redis`
 * (shared by every process of a cluster, with event_bus_type: redis; redis.ts).
 * The local ones answer synchronously (one primary-key lookup, counters kept in memory); redis with a promise.
 */
import { isAbsolute, resolve } from 'node:path'
import type { Redis } from 'ioredis'
import type { OrchConfig } from '../config/schema.ts'
import { ExitCode, OrchError } from '../core/errors.ts'
import type { RedisSettings } from '../store/redis.ts'
import { memoryCache } from './memory.ts'
import { redisCache } from './redis.ts'
import { sqliteCache } from './sqlite.ts'
import type { ResponseCache } from './types.ts'

export type { CacheableRequest, CacheKind, CacheMode } from './key.ts'
export { cacheKey, canonicalRequest, isCacheable, modelAliases, requestKind } from './key.ts'
export { memoryCache } from './memory.ts'
export { type RedisCacheOptions, redisCache } from './redis.ts'
export { CACHE_MIGRATIONS, sqliteCache } from './sqlite.ts'
export type { CachedValue, CacheStats, ClearOptions, LocalResponseCache, ResponseCache } from './types.ts'

export type CachingConfig = OrchConfig['infrastructure_system']['llm_orchestration']['caching']

/** The cluster's Redis connection, for `cache_backend: redis`. */
export interface CacheRedis {
  client: Redis
  settings: Pick<RedisSettings, 'url' | 'prefix'>
}

/**
 * The configured cache, or undefined when caching is off. Relative `cache_path`s resolve against `cwd`.
 * `cache_backend: redis` needs the cluster's connection (`redis`); without one it is a usage error.
 */
export function createCache(caching: CachingConfig, cwd: string = process.cwd(), redis?: CacheRedis): ResponseCache | undefined {
  if (!caching.enabled) return undefined
  switch (caching.cache_backend) {
    case 'sqlite':
      return sqliteCache(resolveCachePath(caching.cache_path, cwd), caching.cache_ttl_seconds)
    case 'memory':
      return memoryCache({ maxEntries: caching.max_entries, maxBytes: caching.max_bytes, ttlSeconds: caching.cache_ttl_seconds })
    case 'redis':
      if (!redis) throw redisCacheUnavailable()
      return redisCache(redis.client, { prefix: redis.settings.prefix, url: redis.settings.url, ttlSeconds: caching.cache_ttl_seconds })
  }
}

export function redisCacheUnavailable(): OrchError {
  return new OrchError('cache_backend "redis" needs the cluster\'s Redis: it is used with event_bus_type: redis', {
    code: 'E_CACHE_BACKEND',
    exitCode: ExitCode.usage,
    hint:
      'set infrastructure_system.distributed_simulation.event_bus_type to redis (with redis_url or redis_host and redis_port), ' +
      'or set infrastructure_system.llm_orchestration.caching.cache_backend to sqlite (shared by the processes of one machine) or memory',
  })
}

/** `cache_path` as an absolute path; `:memory:` (a private sqlite database) stays as it is. */
export function resolveCachePath(path: string, cwd: string = process.cwd()): string {
  return path === ':memory:' || isAbsolute(path) ? path : resolve(cwd, path)
}
