/**
 * The Redis connection of a cluster of orch processes (infrastructure_system.distributed_simulation with
 * event_bus_type: redis). One place decides how orch talks to Redis, for the task queue, the event stream,
 * the shared cache and the shared breaker state:
 *
 * - The address is `redis_url` (`redis://host:port/db` or `rediss://` for TLS) or, without it, `redis_host`
 *   and `redis_port`. A password never sits in the file: it is read from the environment variable named by
 *   `redis_password_env`.
 * - A command never waits for a connection that is down: with no connection it fails at once
 *   (E_REDIS_UNAVAILABLE, status 503, retryable), so a submission is refused rather than accepted and lost,
 *   and a command that gets no answer within `commandTimeoutMs` fails the same way.
 * - A lost connection is retried for ever, 100 ms to 2 s apart; whoever holds the client resumes on its own.
 * - Every key of a cluster starts with `redis_prefix` and a colon, so several clusters can share one Redis.
 */
import { Redis, type RedisOptions } from 'ioredis'
import type { OrchConfig } from '../config/schema.ts'
import { OrchError } from '../core/errors.ts'

export interface RedisSettings {
  /** The URL connected to, without a password. */
  url: string
  password: string | undefined
  /** The prefix of every key, without its colon. */
  prefix: string
}

export interface ConnectOptions {
  /** Shown by CLIENT LIST, so an operator can tell orch's connections apart. */
  name?: string
  /** A command with no answer this long fails (E_REDIS_UNAVAILABLE); 0: no bound (blocking reads). */
  commandTimeoutMs?: number
}

const RETRY_MIN_MS = 100
const RETRY_MAX_MS = 2000
export const DEFAULT_COMMAND_TIMEOUT_MS = 5000

/** A connection that retries for ever and fails commands at once while it is down. */
export function connectRedis(settings: RedisSettings, options: ConnectOptions = {}): Redis {
  const redisOptions: RedisOptions = {
    password: settings.password,
    connectionName: options.name,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    enableReadyCheck: true,
    // Commands of one event-loop turn leave in one write (many tasks claimed, renewed and completed at once).
    enableAutoPipelining: true,
    lazyConnect: false,
    retryStrategy: (times) => Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(times, 5)),
    reconnectOnError: () => false,
    // A disconnect with the socket already gone must not hold the process for ioredis's default 2 s.
    disconnectTimeout: 100,
  }
  const timeout = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS
  if (timeout > 0) redisOptions.commandTimeout = timeout
  const client = new Redis(settings.url, redisOptions)
  // ioredis reports every failed reconnect as an 'error' event; with no listener Node would throw. The
  // state is visible through `client.status`, and every command made meanwhile fails with its own error.
  client.on('error', () => undefined)
  return client
}

/** Resolves once the client is connected, or rejects with E_REDIS_UNAVAILABLE after `timeoutMs`. */
export async function waitReady(client: Redis, settings: RedisSettings, timeoutMs = 10_000): Promise<void> {
  if (client.status === 'ready') return
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('ready', ready)
      reject(unavailable(settings, new Error(`no connection after ${timeoutMs} ms`)))
    }, timeoutMs)
    function ready() {
      clearTimeout(timer)
      resolve()
    }
    client.once('ready', ready)
  })
}

/** The error every Redis failure is reported as: 503, retryable, with the address and the fix. */
export function unavailable(settings: Pick<RedisSettings, 'url'>, cause: unknown): OrchError {
  const reason = cause instanceof Error ? cause.message : String(cause)
  return new OrchError(`Redis at ${settings.url} is unavailable: ${reason}`, {
    code: 'E_REDIS_UNAVAILABLE',
    status: 503,
    retryable: true,
    retryAfterS: 2,
    cause,
    hint: 'orch reconnects on its own; check that redis-server is running and reachable (orch doctor)',
  })
}

/** Run one Redis call; any failure of the connection becomes E_REDIS_UNAVAILABLE. */
export async function redisCall<T>(settings: Pick<RedisSettings, 'url'>, call: () => Promise<T>): Promise<T> {
  try {
    return await call()
  } catch (error) {
    if (error instanceof OrchError) throw error
    // A script's own refusal (a Lua error raised on purpose) is not a connection failure.
    if (error instanceof Error && error.name === 'ReplyError' && !/LOADING|BUSY|MASTERDOWN|READONLY/.test(error.message)) {
      throw new OrchError(`Redis refused a command: ${error.message}`, { code: 'E_REDIS_COMMAND', status: 500, cause: error })
    }
    throw unavailable(settings, error)
  }
}

/** A URL as it may be shown: any password in it replaced by `***`. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password) parsed.password = '***'
    return parsed.toString()
  } catch {
    return url
  }
}

/**
 * Where the cluster's Redis is, from the config: `redis_url`, else `redis://redis_host:redis_port`; the
 * password from the environment variable named by `redis_password_env` (unset or empty: none).
 */
export function redisSettings(config: OrchConfig, env: Record<string, string | undefined> = process.env): RedisSettings {
  const d = config.infrastructure_system.distributed_simulation
  const url = d.redis_url === '' ? `redis://${hostForUrl(d.redis_host)}:${d.redis_port}` : d.redis_url
  const password = d.redis_password_env === '' ? undefined : env[d.redis_password_env] || undefined
  return { url, password, prefix: d.redis_prefix }
}

/** Whether this config puts the queue, events, cache and breakers on Redis. */
export function usesRedis(config: OrchConfig): boolean {
  return config.infrastructure_system.distributed_simulation.event_bus_type === 'redis'
}

function hostForUrl(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host
}
