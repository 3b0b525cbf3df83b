/**
 * The planner for a cluster's Redis (event_bus_type: redis): reachable, new enough, never evicting, and
 * persistent. The queue lives there, so each of these decides whether accepted tasks can be lost.
 */
import { versionAtLeast } from './checks-machine.ts'
import { type Finding, fail, ok, warn } from './finding.ts'

/** Lua scripts, streams with XAUTOCLAIM, GETDEL: all in Redis 6.2. */
export const MIN_REDIS = '6.2.0'

export interface RedisFacts {
  /** The URL connected to, any password redacted. */
  url: string
  /** `redis_password_env` ('' for none), and whether that variable is set. */
  passwordEnv: { name: string; set: boolean }
  reachable: boolean
  /** Why there is no connection: the last connection error (ECONNREFUSED, NOAUTH, WRONGPASS…). */
  error?: string
  /** `redis_version` from `INFO server`. */
  version?: string
  /** The answers of `CONFIG GET`; absent when CONFIG is refused (managed Redis), with `configError`. */
  settings?: { maxmemoryPolicy: string; maxmemory: number; appendonly: string; appendfsync: string }
  configError?: string
}

const KEY = 'infrastructure_system.distributed_simulation'

function unreachable(facts: RedisFacts): Finding {
  const error = facts.error ?? 'no answer'
  if (/NOAUTH|WRONGPASS|invalid password|invalid username-password/i.test(error)) {
    const env = facts.passwordEnv
    const fix =
      env.name === ''
        ? `set ${KEY}.redis_password_env to the name of a variable holding the password (default ORCH_REDIS_PASSWORD), and export it`
        : env.set
          ? `the password in ${env.name} is refused: export the right one (redis_password_env names ${env.name})`
          : `export ${env.name}=<password> before starting orch (redis_password_env names ${env.name})`
    return fail('redis', 'redis', `${facts.url} refused orch: ${error}`, fix)
  }
  return fail(
    'redis',
    'redis',
    `${facts.url} unreachable: ${error}`,
    `start Redis (\`redis-server\`), or correct ${KEY}.redis_url (or redis_host / redis_port)`,
  )
}

function checkVersion(version: string | undefined): Finding {
  const title = 'redis version'
  if (version === undefined)
    return warn('redis.version', title, 'INFO server named no redis_version', `make sure the server is Redis ${MIN_REDIS} or newer`)
  if (!versionAtLeast(version, MIN_REDIS)) {
    return fail(
      'redis.version',
      title,
      `Redis ${version} is older than ${MIN_REDIS}: orch uses Lua scripts, streams with XAUTOCLAIM, and GETDEL`,
      `upgrade Redis to ${MIN_REDIS} or newer`,
    )
  }
  return ok('redis.version', title, `Redis ${version}`)
}

const EVICTION_FIX =
  '`redis-cli CONFIG SET maxmemory-policy noeviction` (then `CONFIG REWRITE`), and in redis.conf: `maxmemory-policy noeviction`'

function checkEviction(s: NonNullable<RedisFacts['settings']>): Finding {
  const title = 'redis eviction'
  if (s.maxmemoryPolicy === 'noeviction') return ok('redis.eviction', title, 'maxmemory-policy noeviction')
  const policy = `maxmemory-policy ${s.maxmemoryPolicy}`
  if (s.maxmemory > 0) {
    return fail(
      'redis.eviction',
      title,
      `${policy} with maxmemory ${s.maxmemory}: under memory pressure Redis evicts keys, queued tasks among them`,
      EVICTION_FIX,
    )
  }
  return warn(
    'redis.eviction',
    title,
    `${policy} (no maxmemory set): once a maxmemory is set, Redis may evict queued tasks under memory pressure`,
    EVICTION_FIX,
  )
}

function checkPersistence(s: NonNullable<RedisFacts['settings']>): Finding {
  const title = 'redis persistence'
  if (s.appendonly !== 'yes') {
    return warn(
      'redis.aof',
      title,
      `appendonly ${s.appendonly}: a Redis restart loses queued tasks accepted since the last snapshot`,
      'set `appendonly yes` (and `appendfsync everysec`, or `always` for no loss): `redis-cli CONFIG SET appendonly yes`, and the same lines in redis.conf',
    )
  }
  const fsync = `appendonly yes, appendfsync ${s.appendfsync}`
  if (s.appendfsync === 'always') return ok('redis.aof', title, `${fsync}: no acknowledged write is lost`)
  if (s.appendfsync === 'everysec') return ok('redis.aof', title, `${fsync}: a crash loses at most about a second of writes`)
  return warn(
    'redis.aof',
    title,
    `${fsync}: the system flushes when it likes, so a machine crash can lose recent queued tasks`,
    'set `appendfsync everysec` (or `always` for no loss) in redis.conf, or `redis-cli CONFIG SET appendfsync everysec`',
  )
}

export function checkRedis(facts: RedisFacts): Finding[] {
  if (!facts.reachable) return [unreachable(facts)]
  const findings = [ok('redis', 'redis', `${facts.url} reachable`), checkVersion(facts.version)]
  if (facts.settings) return [...findings, checkEviction(facts.settings), checkPersistence(facts.settings)]
  const why = `could not be checked: CONFIG GET was refused (${facts.configError ?? 'no answer'}), as managed Redis services often do`
  return [
    ...findings,
    warn('redis.eviction', 'redis eviction', why, "make sure the service's maxmemory-policy is noeviction"),
    warn('redis.aof', 'redis persistence', why, 'make sure the service keeps an append-only file (appendonly yes)'),
  ]
}
