/**
 * THE table of environment variables orch reads, and the only code in orch that reads them (through
 * load.ts). A variable set to the empty string counts as unset.
 */
import { didYouMean } from '../core/errors.ts'
import type { ValueKind } from './fields.ts'
import { type PathSegment, parsePath } from './paths.ts'

export type EnvType = 'string' | 'int' | 'number' | 'boolean' | 'list' | 'duration'

export interface EnvVar {
  name: string
  /** Dotted config key it sets; undefined for the variables that pick files and directories. */
  path: string | undefined
  type: EnvType
  description: string
}

export const ORCH_CONFIG = 'ORCH_CONFIG'
export const ORCH_ENV = 'ORCH_ENV'
export const ORCH_HOME = 'ORCH_HOME'
export const ORCH_OLLAMA_URL = 'ORCH_OLLAMA_URL'
/** Read by src/store/redis.ts, not by the config: the default of redis_password_env names it. */
export const ORCH_REDIS_PASSWORD = 'ORCH_REDIS_PASSWORD'

const INFRA = 'infrastructure_system'
const CACHE = `${INFRA}.llm_orchestration.caching`
const MONITORING = `${INFRA}.performance_monitoring`
const RESOURCES = `${INFRA}.resource_management`
const DISTRIBUTED = `${INFRA}.distributed_simulation`

const row = (name: string, path: string | undefined, type: EnvType, description: string): EnvVar => ({ name, path, type, description })

export const ENV_VARS: readonly EnvVar[] = [
  row(ORCH_CONFIG, undefined, 'string', 'Config file to read instead of ./orch.yaml, ./orch.yml or ./orch.json (the --config flag wins)'),
  row(ORCH_ENV, undefined, 'string', 'Environment name: merge orch.NAME.yaml over the base file (the --env flag wins)'),
  row(ORCH_HOME, undefined, 'string', 'State directory: the sqlite store, worker logs (default ./.orch; the --home flag wins)'),
  row('ORCH_LOG_LEVEL', 'logging.level', 'string', 'Global log level: debug, info, warning, error or none'),
  row('ORCH_SERVER_HOST', 'server.host', 'string', 'Listen address of orch serve'),
  row('ORCH_SERVER_PORT', 'server.port', 'int', 'Listen port of orch serve'),
  row('ORCH_SERVER_TOKEN', 'server.token', 'string', 'Bearer token clients must send to orch serve'),
  row('ORCH_BODY_LIMIT_BYTES', 'server.body_limit_bytes', 'int', 'Largest request body orch serve accepts'),
  row('ORCH_BODY_TIMEOUT_MS', 'server.body_timeout_ms', 'int', 'Milliseconds a request body may take to arrive'),
  row('ORCH_MAX_JSON_DEPTH', 'server.max_json_depth', 'int', 'Deepest JSON nesting accepted in a request body'),
  row('ORCH_MAX_OPEN_REQUESTS', 'server.max_open_requests', 'int', 'Requests orch serve handles at once'),
  row('ORCH_IDLE_TIMEOUT_S', 'server.idle_timeout_s', 'int', 'Seconds a silent connection stays open'),
  row('ORCH_INFRA_ENABLED', `${INFRA}.enabled`, 'boolean', 'Master switch of the infrastructure features'),
  row(
    'ORCH_DISTRIBUTED_ENABLED',
    `${DISTRIBUTED}.enabled`,
    'boolean',
    'Coordination over several machines through Redis (needs ORCH_EVENT_BUS=redis)',
  ),
  row(
    'ORCH_EVENT_BUS',
    `${DISTRIBUTED}.event_bus_type`,
    'string',
    'local_memory (one machine) or redis (a cluster sharing one Redis); kafka is not available in this version',
  ),
  row(
    'ORCH_REDIS_URL',
    `${DISTRIBUTED}.redis_url`,
    'string',
    'Redis of the cluster: redis://[user@]host[:port][/db] or rediss://, never a password',
  ),
  row('ORCH_REDIS_HOST', `${DISTRIBUTED}.redis_host`, 'string', 'Redis host, used when redis_url is empty'),
  row('ORCH_REDIS_PORT', `${DISTRIBUTED}.redis_port`, 'int', 'Redis port, used when redis_url is empty'),
  row('ORCH_REDIS_PASSWORD_ENV', `${DISTRIBUTED}.redis_password_env`, 'string', 'Name of the variable holding the Redis password'),
  row(ORCH_REDIS_PASSWORD, undefined, 'string', 'Redis password, read when redis_password_env names it (the default does)'),
  row('ORCH_REDIS_PREFIX', `${DISTRIBUTED}.redis_prefix`, 'string', 'Prefix of every Redis key of the cluster'),
  row('ORCH_AGENT_RUNNER_CONCURRENCY', `${DISTRIBUTED}.agent_runner_concurrency`, 'int', 'Durable tasks one orch process runs at once'),
  row('ORCH_BATCHING_ENABLED', `${INFRA}.llm_orchestration.batching.enabled`, 'boolean', 'Activate LLM request batching'),
  row('ORCH_CACHE_ENABLED', `${CACHE}.enabled`, 'boolean', 'Activate LLM response caching'),
  row('ORCH_CACHE_BACKEND', `${CACHE}.cache_backend`, 'string', 'Cache storage: sqlite, memory, or redis (needs ORCH_EVENT_BUS=redis)'),
  row('ORCH_CACHE_PATH', `${CACHE}.cache_path`, 'string', 'SQLite cache file'),
  row('ORCH_CACHE_TTL_SECONDS', `${CACHE}.cache_ttl_seconds`, 'int', 'Time-to-live of a cache entry, in seconds'),
  row('ORCH_CACHE_MODE', `${CACHE}.mode`, 'string', 'Which responses are cached: deterministic or always'),
  row('ORCH_MIN_AGENT_RUNNERS', `${RESOURCES}.min_agent_runners`, 'int', 'Default min_workers of a pool (autoscaling)'),
  row('ORCH_MAX_AGENT_RUNNERS', `${RESOURCES}.max_agent_runners`, 'int', 'Default max_workers of a pool (autoscaling)'),
  row(
    'ORCH_AUTO_SCALING_ENABLED',
    `${RESOURCES}.auto_scaling_enabled`,
    'boolean',
    'Size pools by their load between min_workers and max_workers',
  ),
  row('ORCH_MONITORING_ENABLED', `${MONITORING}.enabled`, 'boolean', 'Activate performance sampling'),
  row('ORCH_MONITORING_INTERVAL_SECONDS', `${MONITORING}.collection_interval_seconds`, 'number', 'Seconds between performance samples'),
  row('ORCH_MONITORING_EXPORT_FORMATS', `${MONITORING}.export_formats`, 'list', 'Comma-separated export formats: json, csv, none'),
  row('ORCH_MONITORING_EXPORT_PATH', `${MONITORING}.export_path`, 'string', 'Directory for exported performance samples'),
  row(
    'ORCH_PROMETHEUS_ENABLED',
    `${MONITORING}.integrations.grafana_prometheus.enabled`,
    'boolean',
    'Monitor orch with Prometheus and Grafana (scale manifests, doctor check)',
  ),
  row(
    'ORCH_PROMETHEUS_ENDPOINT',
    `${MONITORING}.integrations.grafana_prometheus.endpoint`,
    'string',
    'URL of the Prometheus that scrapes orch (orch doctor asks it)',
  ),
  row('ORCH_POOL_STARTUP_TIMEOUT', 'pool_startup_timeout', 'int', 'Milliseconds a worker may take to become healthy'),
  row('ORCH_POOL_QUEUE_TIMEOUT', 'pool_queue_timeout', 'int', 'Milliseconds a request may wait in the queue'),
  row('ORCH_POOL_MAX_QUEUE_SIZE', 'pool_max_queue_size', 'int', 'Queued requests before new ones are rejected'),
  row('ORCH_TASK_MAX_ATTEMPTS', 'tasks.max_attempts', 'int', 'Attempts of a task before it fails'),
  row('ORCH_TASK_SYNCHRONOUS', 'tasks.synchronous', 'string', 'FULL or NORMAL durability of task state'),
  row('ORCH_TASK_RETENTION_HOURS', 'tasks.retention_hours', 'number', 'Hours finished tasks are kept'),
  row('ORCH_TASK_MAX_QUEUED', 'tasks.max_queued', 'int', 'Most tasks queued at once over all tenants (0: no bound)'),
  row('ORCH_TASK_MAX_QUEUED_PER_TENANT', 'tasks.max_queued_per_tenant', 'int', 'Most tasks one tenant may have queued (0: no bound)'),
  row('ORCH_BACKEND_TOTAL_TIMEOUT_MS', 'backend_timeouts.total_ms', 'int', 'Longest whole backend call, in milliseconds'),
  row('ORCH_GRACEFUL_SHUTDOWN_TIMEOUT_MS', 'graceful_shutdown_timeout_ms', 'int', 'Milliseconds between SIGTERM and SIGKILL'),
  row('ORCH_HEARTBEAT_ENABLED', 'heartbeat.enabled', 'boolean', 'Heartbeat monitoring of pool workers'),
  row('ORCH_OLLAMA_CONCURRENCY', 'runtime.ollama.concurrency', 'int', 'Calls in flight per Ollama backend without its own concurrency'),
  row(
    ORCH_OLLAMA_URL,
    'backends[0].url',
    'string',
    'URL of the default Ollama backend; applies only when the config lists no backends (backends absent or []), otherwise ignored',
  ),
  row('ORCH_BATCH_INPUTS_ROOT', 'batch.inputs_root', 'string', 'Folder holding one sub-folder per batch'),
  row('ORCH_BATCH_OUTPUTS_ROOT', 'batch.outputs_root', 'string', 'Folder batch results are written under'),
  row('ORCH_BATCH_FILE_GLOBS', 'batch.file_glob_patterns', 'list', 'Comma-separated globs that make a batch folder pending'),
  row('ORCH_BATCH_INTERVAL_SECONDS', 'batch.interval_seconds', 'int', 'Seconds between batch scheduler ticks'),
  row('ORCH_BATCH_STALE_LOCK_SECONDS', 'batch.stale_lock_seconds', 'int', 'Age after which a batch .lock is reported as stale'),
  row('ORCH_BATCH_MAX_INPUT_BYTES', 'batch.max_input_bytes', 'int', 'Largest metric input file orch batch reads'),
]

const TRUE = new Set(['true', '1', 'yes', 'on'])
const FALSE = new Set(['false', '0', 'no', 'off'])
const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?$/i

/**
 * A string (from an env var or a flag) as the value kind wants it. A string that does not fit is returned
 * as is, so the schema reports it with its usual message ("expected an integer 1-65535, got "abc"").
 */
export function coerceString(kind: ValueKind | EnvType | undefined, raw: string): unknown {
  const text = raw.trim()
  switch (kind) {
    case 'int':
    case 'number':
      return NUMBER.test(text) ? Number(text) : raw
    case 'duration':
      return NUMBER.test(text) ? Number(text) : text
    case 'boolean':
      return TRUE.has(text.toLowerCase()) ? true : FALSE.has(text.toLowerCase()) ? false : raw
    case 'list':
      return text
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '')
    default:
      return raw
  }
}

export interface EnvSetting {
  variable: string
  segments: PathSegment[]
  value: unknown
}

export interface EnvironmentReading {
  configFile?: string
  envName?: string
  home?: string
  /** Config keys set by variables, in table order; ORCH_OLLAMA_URL is not among them (see ollamaUrl). */
  settings: EnvSetting[]
  ollamaUrl?: string
  /** ORCH_* variables orch does not know (likely typos). */
  warnings: string[]
}

const KNOWN = new Set(ENV_VARS.map((e) => e.name))

/** ORCH_* variables orch does not know, each with a did-you-mean when one is close. */
export function unknownVariables(env: Record<string, string | undefined> = process.env): string[] {
  return Object.keys(env)
    .filter((name) => name.startsWith('ORCH_') && !KNOWN.has(name))
    .map((name) => {
      const guess = didYouMean(name, KNOWN)
      return `unknown environment variable ${name}${guess ? `; did you mean ${guess}?` : ''} (orch config env lists them)`
    })
}

export function readEnvironment(env: Record<string, string | undefined>): EnvironmentReading {
  const get = (name: string) => (env[name] === '' ? undefined : env[name])
  const settings: EnvSetting[] = []
  for (const variable of ENV_VARS) {
    const raw = get(variable.name)
    if (raw === undefined || variable.path === undefined || variable.name === ORCH_OLLAMA_URL) continue
    settings.push({ variable: variable.name, segments: parsePath(variable.path) ?? [], value: coerceString(variable.type, raw) })
  }
  const warnings = unknownVariables(env)
  return { configFile: get(ORCH_CONFIG), envName: get(ORCH_ENV), home: get(ORCH_HOME), settings, ollamaUrl: get(ORCH_OLLAMA_URL), warnings }
}
