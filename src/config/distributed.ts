/**
 * `infrastructure_system.distributed_simulation`: one machine (local_memory) or a cluster sharing one
 * Redis (docs/scaling.md). The Redis address is checked here, where the config is read, so that a typo or
 * a password written into the file is refused by `orch config validate` before any process connects.
 */
import * as v from 'valibot'
import { bool, int, oneOf, port, section, str } from './fields.ts'

export const PASSWORD_IN_URL =
  'a password does not belong in the config file: put it in the environment variable named by redis_password_env (default ORCH_REDIS_PASSWORD)'

const URL_EXPECTED = 'expected a redis:// or rediss:// (TLS) URL: redis://[user@]host[:port][/db]'

/** `redis://[user@]host[:port][/db]` or `rediss://…`; a password (in the userinfo or `?password=`) is refused. */
function redisUrl(description: string) {
  return v.pipe(
    v.string(URL_EXPECTED),
    v.check((s) => s === '' || isRedisUrl(s), URL_EXPECTED),
    v.check((s) => s === '' || !isRedisUrl(s) || !carriesPassword(s), PASSWORD_IN_URL),
    v.description(description),
    v.metadata({ kind: 'string', type: 'redis:// or rediss:// URL', example: 'redis://redis.internal:6379/0' }),
  )
}

function isRedisUrl(text: string): boolean {
  if (!/^rediss?:\/\//.test(text) || !URL.canParse(text)) return false
  const url = new URL(text)
  return url.hostname !== '' && /^(\/\d*)?$/.test(url.pathname)
}

function carriesPassword(text: string): boolean {
  const url = new URL(text)
  return url.password !== '' || url.searchParams.has('password')
}

/** The name of an environment variable, or '' for none. */
function envName(description: string) {
  const msg = 'expected the name of an environment variable ([A-Za-z_][A-Za-z0-9_]*), or "" for none'
  return v.pipe(
    v.string(msg),
    v.regex(/^([A-Za-z_][A-Za-z0-9_]*)?$/, msg),
    v.description(description),
    v.metadata({ kind: 'string', type: 'environment variable name' }),
  )
}

function keyPrefix(description: string) {
  const msg = 'expected a non-empty prefix of letters, digits, "_", "." or "-"'
  return v.pipe(
    v.string(msg),
    v.regex(/^[A-Za-z0-9_.-]+$/, msg),
    v.description(description),
    v.metadata({ kind: 'string', type: 'key prefix' }),
  )
}

const entries = {
  enabled: v.optional(
    bool(
      'Coordination over several machines: every orch serve and orch worker pointing at the same Redis shares one queue (needs event_bus_type: redis; docs/scaling.md)',
    ),
    false,
  ),
  event_bus_type: v.optional(
    oneOf(
      ['local_memory', 'redis', 'kafka'],
      'Queue and event bus. local_memory: one machine, the queue in state.db, no server to run; redis: the queue, events, response cache and circuit-breaker state live in Redis, shared by every orch serve and orch worker pointing at it (needs enabled: true; docs/scaling.md). Not available in this version: kafka (orch has no Kafka bus, as it could not be tested without a Kafka server)',
    ),
    'local_memory',
  ),
  redis_url: v.optional(
    redisUrl(
      'Redis of the cluster (event_bus_type: redis): redis://[user@]host[:port][/db], or rediss:// for TLS; empty: redis://redis_host:redis_port. Never a password: see redis_password_env',
    ),
    '',
  ),
  redis_host: v.optional(str('Redis host, used when redis_url is empty'), 'localhost'),
  redis_port: v.optional(port('Redis port, used when redis_url is empty'), 6379),
  redis_password_env: v.optional(
    envName('Name of the environment variable holding the Redis password (the variable, not the password); "": no password'),
    'ORCH_REDIS_PASSWORD',
  ),
  redis_prefix: v.optional(
    keyPrefix('Every Redis key of the cluster starts with this and a colon, so several clusters can share one Redis'),
    'orch',
  ),
  agent_runner_concurrency: v.optional(
    int(
      'Durable tasks one orch process runs at once (never caps proxied Ollama/OpenAI calls); no cap when infrastructure_system.enabled is false',
    ),
    5,
  ),
  orchestrator_mode: v.optional(
    oneOf(
      ['auto', 'manual'],
      'auto: the autoscaler sizes the pools (with resource_management.auto_scaling_enabled); manual: no automatic decisions, orch scale set POOL N sizes a pool',
    ),
    'auto',
  ),
}

type Distributed = { enabled: boolean; event_bus_type: string }

/** `enabled` and `event_bus_type` must agree: several machines coordinate only through Redis. */
export const distributedSimulation = v.pipe(
  section('How work is spread over processes and machines', entries),
  v.forward(
    v.partialCheck(
      [['enabled'], ['event_bus_type']],
      (d: Distributed) => !(d.enabled && d.event_bus_type === 'local_memory'),
      'coordination over several machines needs event_bus_type: redis (event_bus_type is local_memory); set event_bus_type: redis, or enabled: false for one machine',
    ),
    ['enabled'],
  ),
  v.forward(
    v.partialCheck(
      [['enabled'], ['event_bus_type']],
      (d: Distributed) => !(!d.enabled && d.event_bus_type === 'redis'),
      'set distributed_simulation.enabled: true to run over Redis (enabled is false), or use event_bus_type: local_memory for one machine',
    ),
    ['event_bus_type'],
  ),
)
