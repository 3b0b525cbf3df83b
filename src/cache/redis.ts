/**
 * The Redis response cache (`cache_backend: redis`, with `event_bus_type: redis`): one cache shared by
 * every orch process of a cluster, on every machine.
 *
 * - An entry is `<prefix>:cache:<key>`, its JSON with `SET … EX cache_ttl_seconds`: Redis drops it when
 *   its time is up. Beside the entries, `<prefix>:cache-meta` (key → expiry, creation, bytes, model),
 *   `<prefix>:cache-expiry` and `<prefix>:cache-created` (sorted by those times) and `<prefix>:cache-counters`
 *   let `stats` and `clear` work without KEYS; every store also sweeps a few entries whose time is up.
 * - A lookup is one GET; hits and misses are counted here and added to the shared counters once a second.
 * - Redis down or slow never fails a request: a lookup that errors or takes over `lookupTimeoutMs` is a
 *   miss, a store that errors is dropped; both count as `errors`, and the outage is logged once (debug).
 *   The shared client reconnects by itself, and the cache works again with it.
 * - `stats` and `clear` are the operator's calls: without Redis they fail with E_REDIS_UNAVAILABLE.
 */
import { createHash } from 'node:crypto'
import type { Redis } from 'ioredis'
import { logger } from '../core/log.ts'
import { redisCall } from '../store/redis.ts'
import type { CacheKind } from './key.ts'
import { modelAliases } from './key.ts'
import type { CachedValue, CacheStats, ClearOptions, ResponseCache } from './types.ts'

export interface RedisCacheOptions {
  /** The cluster's key prefix, without its colon. */
  prefix: string
  /** Where Redis is, as it may be shown (no password). */
  url: string
  ttlSeconds: number
  /** A lookup not answered this long is a miss (default 500 ms). */
  lookupTimeoutMs?: number
  now?: () => number
  log?: { debug(message: string): void }
}

const FLUSH_INTERVAL_MS = 1000
/** Entries past their time swept by each store, and by each round of a full sweep. */
const SWEEP_ON_SET = 20
const SWEEP_BATCH = 1000
const SCAN_COUNT = 500
const DEFAULT_LOOKUP_TIMEOUT_MS = 500

// KEYS: meta, expiry, created, counters. ARGV[1]: the entry key prefix. A meta value is
// "<expires_at> <created_at> <bytes> <model>" (the model last: it may hold spaces or colons).
const LUA_REMOVE = `
local function bytesOf(meta)
  return tonumber(string.match(meta, '^%S+ %S+ (%S+)')) or 0
end
local function remove(key)
  local meta = redis.call('HGET', KEYS[1], key)
  local gone = redis.call('DEL', ARGV[1] .. key)
  if meta then
    redis.call('HDEL', KEYS[1], key)
    redis.call('HINCRBY', KEYS[4], 'bytes', -bytesOf(meta))
  end
  redis.call('ZREM', KEYS[2], key)
  redis.call('ZREM', KEYS[3], key)
  if meta or gone == 1 then return 1 end
  return 0
end
local function sweep(now, limit)
  local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
  for _, key in ipairs(due) do remove(key) end
  if #due > 0 then redis.call('HINCRBY', KEYS[4], 'expired', #due) end
  return #due
end
`

// ARGV: prefix, now, sweep limit, key, entry JSON, ttl seconds, expires_at, created_at, bytes, model.
const SET_SCRIPT = `${LUA_REMOVE}
local old = redis.call('HGET', KEYS[1], ARGV[4])
if old then redis.call('HINCRBY', KEYS[4], 'bytes', -bytesOf(old)) end
redis.call('SET', ARGV[1] .. ARGV[4], ARGV[5], 'EX', ARGV[6])
redis.call('HSET', KEYS[1], ARGV[4], ARGV[7] .. ' ' .. ARGV[8] .. ' ' .. ARGV[9] .. ' ' .. ARGV[10])
redis.call('ZADD', KEYS[2], ARGV[7], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[8], ARGV[4])
redis.call('HINCRBY', KEYS[4], 'bytes', ARGV[9])
redis.call('HINCRBY', KEYS[4], 'sets', 1)
sweep(ARGV[2], tonumber(ARGV[3]))
return 1
`

// ARGV: prefix, now, limit. Returns how many were swept (counted as expired).
const SWEEP_SCRIPT = `${LUA_REMOVE}
return sweep(ARGV[2], tonumber(ARGV[3]))
`

// ARGV: prefix, 'expired' or '', keys…. Returns how many existed.
const REMOVE_SCRIPT = `${LUA_REMOVE}
local removed = 0
for i = 3, #ARGV do removed = removed + remove(ARGV[i]) end
if ARGV[2] == 'expired' and removed > 0 then redis.call('HINCRBY', KEYS[4], 'expired', removed) end
return removed
`

type Counters = Pick<CacheStats, 'hits' | 'misses'>

export function redisCache(client: Redis, options: RedisCacheOptions): ResponseCache {
  const now = options.now ?? Date.now
  const log = options.log ?? logger('store')
  const lookupTimeoutMs = options.lookupTimeoutMs ?? DEFAULT_LOOKUP_TIMEOUT_MS
  const entryPrefix = `${options.prefix}:cache:`
  const keys = ['meta', 'expiry', 'created', 'counters'].map((name) => `${options.prefix}:cache-${name}`) as [
    string,
    string,
    string,
    string,
  ]
  const [metaKey, , createdKey, countersKey] = keys
  const settings = { url: options.url }
  const run = scripts(client)
  let pending: Counters = { hits: 0, misses: 0 }
  let errors = 0
  let down = false
  let closed = false

  function answered(): void {
    if (!down) return
    down = false
    log.debug(`response cache: Redis at ${options.url} answers again`)
  }

  function failed(what: string, error: unknown): void {
    errors++
    if (down) return
    down = true
    const reason = error instanceof Error ? error.message : String(error)
    log.debug(
      `response cache: a ${what} failed (Redis at ${options.url}: ${reason}); lookups are misses and answers are not kept until it is back`,
    )
  }

  async function flush(): Promise<void> {
    const p = pending
    if (p.hits === 0 && p.misses === 0) return
    pending = { hits: 0, misses: 0 }
    try {
      const results = await client.multi().hincrby(countersKey, 'hits', p.hits).hincrby(countersKey, 'misses', p.misses).exec()
      const error = results?.find(([e]) => e)?.[0]
      if (!results || error) throw error ?? new Error('the counter update was discarded')
    } catch {
      // Kept for the next round: the counters are only figures, never worth an error.
      pending = { hits: pending.hits + p.hits, misses: pending.misses + p.misses }
    }
  }

  const timer = setInterval(() => void flush(), FLUSH_INTERVAL_MS)
  timer.unref()

  /** Remove entries in batches; returns how many existed. */
  async function remove(found: string[], countAs: 'expired' | ''): Promise<number> {
    let removed = 0
    for (let at = 0; at < found.length; at += SWEEP_BATCH) {
      removed += Number(await run.remove(keys, [entryPrefix, countAs, ...found.slice(at, at + SWEEP_BATCH)]))
    }
    return removed
  }

  async function sweepAll(): Promise<number> {
    let swept = 0
    for (;;) {
      const n = Number(await run.sweep(keys, [entryPrefix, now(), SWEEP_BATCH]))
      swept += n
      if (n < SWEEP_BATCH) return swept
    }
  }

  /** Every key in the meta hash whose entry matches. */
  async function metaKeys(match: (meta: Meta) => boolean): Promise<string[]> {
    const found: string[] = []
    let cursor = '0'
    do {
      const [next, flat] = await client.hscan(metaKey, cursor, 'COUNT', SCAN_COUNT)
      cursor = next
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const meta = parseMeta(flat[i + 1] as string)
        if (meta && match(meta)) found.push(flat[i] as string)
      }
    } while (cursor !== '0')
    return found
  }

  /** Every entry key under the prefix (SCAN MATCH, never KEYS), as cache keys. */
  async function entryKeys(): Promise<string[]> {
    const found: string[] = []
    let cursor = '0'
    do {
      const [next, names] = await client.scan(cursor, 'MATCH', `${globEscape(entryPrefix)}*`, 'COUNT', SCAN_COUNT)
      cursor = next
      // A colon after the prefix is another cluster's prefix that starts like this one.
      for (const name of names) if (!name.slice(entryPrefix.length).includes(':')) found.push(name.slice(entryPrefix.length))
    } while (cursor !== '0')
    return found
  }

  return {
    async get(key) {
      let text: string | null
      try {
        text = await withTimeout(client.get(entryPrefix + key), lookupTimeoutMs)
        answered()
      } catch (error) {
        pending.misses++
        failed('lookup', error)
        return undefined
      }
      const entry = text === null ? undefined : parseEntry(text)
      if (entry) pending.hits++
      else pending.misses++
      return entry
    },

    async set(key, entry) {
      const json = JSON.stringify(entry.value)
      if (json === undefined) throw new TypeError('a cached value must be JSON')
      const createdAt = now()
      const text = `${JSON.stringify({ kind: entry.kind, model: entry.model, created_at: createdAt }).slice(0, -1)},"value":${json}}`
      const args = [entryPrefix, createdAt, SWEEP_ON_SET, key, text, options.ttlSeconds]
      args.push(createdAt + options.ttlSeconds * 1000, createdAt, Buffer.byteLength(json), entry.model)
      try {
        await run.set(keys, args)
        answered()
      } catch (error) {
        failed('store', error)
      }
    },

    stats() {
      return redisCall(settings, async () => {
        await sweepAll()
        const results = await client
          .pipeline()
          .hlen(metaKey)
          .hgetall(countersKey)
          .zrange(createdKey, 0, 0, 'WITHSCORES')
          .zrange(createdKey, -1, -1, 'WITHSCORES')
          .exec()
        const failure = results?.find(([e]) => e)?.[0]
        if (!results || failure) throw failure ?? new Error('the pipeline was discarded')
        const [entries, stored, oldest, newest] = results.map(([, value]) => value) as [number, Record<string, string>, string[], string[]]
        const count = (name: string) => Number(stored[name] ?? 0) || 0
        const stats: CacheStats = {
          backend: 'redis',
          entries,
          bytes: Math.max(0, count('bytes')),
          hits: count('hits') + pending.hits,
          misses: count('misses') + pending.misses,
          sets: count('sets'),
          evictions: count('evictions'),
          expired: count('expired'),
          oldest_at: oldest[1] === undefined ? null : Number(oldest[1]),
          newest_at: newest[1] === undefined ? null : Number(newest[1]),
          url: options.url,
          errors,
        }
        return stats
      })
    },

    clear(clearOptions: ClearOptions = {}) {
      return redisCall(settings, async () => {
        const models = clearOptions.model === undefined ? undefined : modelAliases(clearOptions.model)
        if (clearOptions.expiredOnly && !models) return sweepAll()
        if (clearOptions.expiredOnly || models) {
          const time = now()
          const found = await metaKeys(
            (meta) => (!models || models.includes(meta.model)) && (!clearOptions.expiredOnly || meta.expiresAt <= time),
          )
          return remove(found, clearOptions.expiredOnly ? 'expired' : '')
        }
        // Everything: the entries there are, then what the meta hash still lists (entries Redis dropped).
        const removed = await remove(await entryKeys(), '')
        return removed + (await remove(await metaKeys(() => true), ''))
      })
    },

    async close() {
      if (closed) return
      closed = true
      clearInterval(timer)
      await flush()
    },
  }
}

interface Meta {
  expiresAt: number
  model: string
}

function parseMeta(text: string): Meta | undefined {
  const match = /^(\S+) \S+ \S+ (.*)$/s.exec(text)
  if (!match) return undefined
  return { expiresAt: Number(match[1]), model: match[2] as string }
}

const KINDS = new Set<CacheKind>(['chat', 'generate', 'embed'])

/** An entry as stored; anything else (written outside orch, damaged) reads as a miss. */
function parseEntry(text: string): CachedValue | undefined {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }
  if (value === null || typeof value !== 'object') return undefined
  const e = value as Record<string, unknown>
  if (!KINDS.has(e.kind as CacheKind) || typeof e.model !== 'string' || typeof e.created_at !== 'number' || e.value === undefined) {
    return undefined
  }
  return { kind: e.kind as CacheKind, model: e.model, value: e.value, created_at: e.created_at }
}

/** A key prefix as a SCAN MATCH pattern matches it literally. */
function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&')
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)
  })
  promise.catch(() => undefined)
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}

type ScriptArg = string | number

/** The cache's scripts, run by hash (EVALSHA) and loaded on the first NOSCRIPT. */
function scripts(client: Redis) {
  const make = (source: string) => {
    const sha = createHash('sha1').update(source).digest('hex')
    return async (keys: string[], args: ScriptArg[]): Promise<unknown> => {
      try {
        return await client.evalsha(sha, keys.length, ...keys, ...args)
      } catch (error) {
        if (!(error instanceof Error) || !error.message.includes('NOSCRIPT')) throw error
        return await client.eval(source, keys.length, ...keys, ...args)
      }
    }
  }
  return { set: make(SET_SCRIPT), sweep: make(SWEEP_SCRIPT), remove: make(REMOVE_SCRIPT) }
}
