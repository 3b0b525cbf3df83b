/**
 * `orch cache`: look into and empty the sqlite response cache (`caching.cache_path`). These run as a second
 * process beside a running `orch serve`: the file is shared (WAL), and serve adds its counters to it every
 * second. A memory cache lives inside the serve process and has no file to read. A redis cache (with
 * event_bus_type: redis) is read and cleared on the cluster's Redis, under its redis_prefix.
 */
import { existsSync, statSync } from 'node:fs'
import {
  type CacheStats,
  type CachingConfig,
  type ResponseCache,
  redisCache,
  redisCacheUnavailable,
  resolveCachePath,
  sqliteCache,
} from '../src/cache/index.ts'
import { displayPath } from '../src/config/load.ts'
import { ExitCode, OrchError, UsageError } from '../src/core/errors.ts'
import { connectRedis, type RedisSettings, redactUrl, redisSettings, usesRedis, waitReady } from '../src/store/redis.ts'
import { defineOrchCommand, type GlobalArgValues, globalArgs, printJson, printText } from './_args.ts'
import { loadConfig } from './_config.ts'

const MEMORY_NOTE = 'cache_backend is memory: a memory cache lives inside a running `orch serve` and has no file to read or clear'

interface Target {
  caching: CachingConfig
  /** Absolute path of the sqlite file; undefined for the memory backend. */
  path: string | undefined
  shown: string | undefined
  /** The cluster's Redis, for the redis backend. */
  redis?: RedisSettings
}

function target(args: GlobalArgValues): Target {
  const { config } = loadConfig(args)
  const caching = config.infrastructure_system.llm_orchestration.caching
  if (caching.cache_backend === 'redis') {
    if (!usesRedis(config)) throw redisCacheUnavailable()
    const redis = redisSettings(config)
    return { caching, path: undefined, shown: `${redactUrl(redis.url)} (prefix ${redis.prefix})`, redis }
  }
  if (caching.cache_backend === 'memory') return { caching, path: undefined, shown: undefined }
  const path = resolveCachePath(caching.cache_path)
  return { caching, path, shown: displayPath(path, process.cwd()) }
}

/** Read the file's figures; a cache that was never written reads as empty (and is not created). */
function readStats(path: string): CacheStats {
  if (path !== ':memory:' && !existsSync(path)) {
    return {
      backend: 'sqlite',
      entries: 0,
      bytes: 0,
      hits: 0,
      misses: 0,
      sets: 0,
      evictions: 0,
      expired: 0,
      oldest_at: null,
      newest_at: null,
      path,
    }
  }
  const cache = sqliteCache(path, 1)
  try {
    return cache.stats()
  } finally {
    cache.close()
  }
}

/** The cluster's shared cache for one command: connected (within 5 s, else E_REDIS_UNAVAILABLE), then let go. */
async function withRedisCache<T>(t: Target, redis: RedisSettings, use: (cache: ResponseCache) => Promise<T>): Promise<T> {
  const client = connectRedis(redis, { name: 'orch-cache' })
  try {
    const url = redactUrl(redis.url)
    await waitReady(client, { ...redis, url }, 5000)
    const cache = redisCache(client, { prefix: redis.prefix, url, ttlSeconds: t.caching.cache_ttl_seconds })
    try {
      return await use(cache)
    } finally {
      await cache.close()
    }
  } finally {
    client.disconnect()
  }
}

function redisStatsJson(t: Target, redis: RedisSettings, stats: CacheStats) {
  return { backend: 'redis', ...settingsJson(t), url: redactUrl(redis.url), prefix: redis.prefix, ...figuresJson(stats) }
}

/** What every backend's stats say of the config. */
function settingsJson(t: Target) {
  return { enabled: t.caching.enabled, mode: t.caching.mode, ttl_seconds: t.caching.cache_ttl_seconds }
}

/** The figures every backend counts. */
function figuresJson(stats: CacheStats) {
  const lookups = stats.hits + stats.misses
  return {
    entries: stats.entries,
    bytes: stats.bytes,
    hits: stats.hits,
    misses: stats.misses,
    hit_rate: lookups === 0 ? null : stats.hits / lookups,
    sets: stats.sets,
    evictions: stats.evictions,
    expired: stats.expired,
    oldest_at: iso(stats.oldest_at),
    newest_at: iso(stats.newest_at),
  }
}

function redisStatsText(shown: string, s: ReturnType<typeof redisStatsJson>): string {
  const rate = s.hit_rate === null ? 'no lookups yet' : `hit rate ${(s.hit_rate * 100).toFixed(1)}%`
  const lines = [
    `Response cache ${shown} (redis, mode ${s.mode}, ttl ${s.ttl_seconds}s${s.enabled ? '' : ', caching disabled in the config'})`,
    `  entries    ${s.entries} (${formatBytes(s.bytes)} of responses)`,
    `  lookups    ${s.hits} hits, ${s.misses} misses, ${rate}`,
    `  writes     ${s.sets} sets, ${s.expired} expired`,
  ]
  if (s.oldest_at !== null) lines.push(`  oldest     ${s.oldest_at}`, `  newest     ${s.newest_at}`)
  return lines.join('\n')
}

function fileBytes(path: string): number {
  return [path, `${path}-wal`].reduce((sum, file) => sum + (existsSync(file) ? statSync(file).size : 0), 0)
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString())

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let value = n / 1024
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`
}

function statsJson(t: Target & { path: string }, stats: CacheStats) {
  const exists = t.path === ':memory:' || existsSync(t.path)
  return { backend: 'sqlite', ...settingsJson(t), path: t.path, exists, file_bytes: fileBytes(t.path), ...figuresJson(stats) }
}

function statsText(shown: string, s: ReturnType<typeof statsJson>): string {
  const rate = s.hit_rate === null ? 'no lookups yet' : `hit rate ${(s.hit_rate * 100).toFixed(1)}%`
  const lines = [
    `Response cache ${shown} (sqlite, mode ${s.mode}, ttl ${s.ttl_seconds}s${s.enabled ? '' : ', caching disabled in the config'})`,
  ]
  if (!s.exists) lines.push('  no cache file yet: it is created when the first answer is cached')
  lines.push(
    `  entries    ${s.entries} (${formatBytes(s.bytes)} of responses, file ${formatBytes(s.file_bytes)})`,
    `  lookups    ${s.hits} hits, ${s.misses} misses, ${rate}`,
    `  writes     ${s.sets} sets, ${s.expired} expired, ${s.evictions} evicted`,
  )
  if (s.oldest_at !== null) lines.push(`  oldest     ${s.oldest_at}`, `  newest     ${s.newest_at}`)
  return lines.join('\n')
}

const stats = defineOrchCommand({
  meta: { name: 'stats', description: 'Entries, size, hit and miss counters, hit rate, oldest and newest entry of the response cache' },
  args: { ...globalArgs },
  examples: ['orch cache stats', 'orch cache stats --json', 'orch cache stats --config orch.prod.yaml'],
  async run({ args }) {
    const t = target(args)
    if (t.redis) {
      const redis = t.redis
      const s = redisStatsJson(t, redis, await withRedisCache(t, redis, async (cache) => cache.stats()))
      if (args.json) printJson(s)
      else printText(redisStatsText(t.shown ?? '', s))
      return
    }
    if (t.path === undefined || t.shown === undefined) {
      if (args.json) printJson({ backend: 'memory', enabled: t.caching.enabled, path: null, note: MEMORY_NOTE })
      else printText(`${MEMORY_NOTE}; its hits and misses are in that server's metrics`)
      return
    }
    const report = statsJson({ ...t, path: t.path }, readStats(t.path))
    if (args.json) printJson(report)
    else printText(statsText(t.shown, report))
  },
})

const clear = defineOrchCommand({
  meta: { name: 'clear', description: 'Remove entries from the response cache: all, only expired ones, or one model’s' },
  args: {
    ...globalArgs,
    expired: { type: 'boolean', description: 'Only entries past their time-to-live (cache_ttl_seconds when they were stored)' },
    model: { type: 'string', valueHint: 'NAME', description: 'Only entries of this model (llama3.2 and llama3.2:latest are one)' },
  },
  examples: ['orch cache clear', 'orch cache clear --expired', 'orch cache clear --model llama3.2 --json'],
  async run({ args }) {
    if (args.model !== undefined && args.model.trim() === '') {
      throw new UsageError('--model needs a model name', { hint: 'orch cache clear --model llama3.2' })
    }
    const t = target(args)
    const which = [args.expired ? 'expired' : '', args.model ? `${args.model}` : ''].filter(Boolean).join(' ')
    if (t.redis) {
      const options = { expiredOnly: args.expired === true, model: args.model }
      const removed = await withRedisCache(t, t.redis, async (cache) => cache.clear(options))
      if (args.json)
        printJson({
          url: redactUrl(t.redis.url),
          prefix: t.redis.prefix,
          removed,
          expired_only: options.expiredOnly,
          model: args.model ?? null,
        })
      else printText(`removed ${removed} ${which ? `${which} ` : ''}entr${removed === 1 ? 'y' : 'ies'} from ${t.shown}`)
      return
    }
    if (t.path === undefined || t.shown === undefined) {
      throw new OrchError(MEMORY_NOTE, {
        code: 'E_CACHE_MEMORY',
        exitCode: ExitCode.usage,
        hint: 'restarting orch serve empties a memory cache',
      })
    }
    let removed = 0
    if (t.path === ':memory:' || existsSync(t.path)) {
      const cache = sqliteCache(t.path, t.caching.cache_ttl_seconds)
      try {
        removed = cache.clear({ expiredOnly: args.expired === true, model: args.model })
      } finally {
        cache.close()
      }
    }
    if (args.json) {
      printJson({ path: t.path, removed, expired_only: args.expired === true, model: args.model ?? null })
      return
    }
    printText(`removed ${removed} ${which ? `${which} ` : ''}entr${removed === 1 ? 'y' : 'ies'} from ${t.shown}`)
  },
})

export default defineOrchCommand({
  meta: { name: 'cache', description: 'Inspect and empty the LLM response cache' },
  subCommands: { stats, clear },
  examples: ['orch cache stats', 'orch cache clear --expired', 'orch cache clear --model llama3.2'],
})
