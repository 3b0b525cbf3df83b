/**
 * The configuration schema: every section, every default, one description per key. `{}` parses to a
 * complete config. Keys are snake_case as written in YAML. Relative paths (cache_path, export_path, the
 * batch roots) are kept as written and resolve against the working directory of the orch process.
 */
import * as v from 'valibot'
import { LOG_CATEGORIES, LOG_LEVELS } from '../core/log.ts'
import { backendsSchema } from './backends.ts'
import { distributedSimulation } from './distributed.ts'
import { bool, enumList, httpUrl, int, nonNegativeInt, num, oneOf, port, section, str, stringList } from './fields.ts'
import { poolsSchema } from './pools.ts'

const batching = section('Group LLM requests into batches', {
  enabled: v.optional(bool('Activate LLM request batching'), true),
  batch_size: v.optional(int('Requests grouped into one batch'), 50),
  batch_interval_seconds: v.optional(num('Longest wait (seconds) before a partial batch is sent', { min: 0 }), 0.1),
  max_concurrent_batches: v.optional(int('Batches in flight at once'), 5),
})

const caching = section('Cache LLM responses', {
  enabled: v.optional(bool('Activate LLM response caching'), true),
  cache_backend: v.optional(
    oneOf(
      ['sqlite', 'redis', 'memory'],
      'Where cached responses are stored: sqlite (a file shared by the processes of one machine), memory (inside one process) or redis (shared by every instance of the cluster; needs distributed_simulation.event_bus_type: redis)',
    ),
    'sqlite',
  ),
  cache_path: v.optional(str('SQLite cache file (relative to the working directory)'), './llm_cache.db'),
  cache_ttl_seconds: v.optional(int('Time-to-live of a cache entry, in seconds'), 86400),
  mode: v.optional(
    oneOf(
      ['deterministic', 'always'],
      'deterministic: cache only requests with temperature 0 or a fixed seed; always: cache every request',
    ),
    'deterministic',
  ),
  max_entries: v.optional(int('Most entries kept by the memory backend'), 10000),
  max_bytes: v.optional(int('Most bytes of responses kept by the memory backend'), 104857600),
})

const resourceManagement = v.pipe(
  section('Autoscaling of pools: each pool sized between its min_workers and max_workers by its load (docs/scaling.md#autoscaling)', {
    auto_scaling_enabled: v.optional(
      bool('Size every pool by its load between its min_workers and max_workers; false: pools keep pool_size workers'),
      false,
    ),
    min_agent_runners: v.optional(nonNegativeInt('Default min_workers of a pool: the fewest workers it keeps (0: none while idle)'), 1),
    max_agent_runners: v.optional(
      int('Default max_workers of a pool: the most workers it runs (also the HPA maximum of the generated manifests)'),
      10,
    ),
    cpu_threshold_percent: v.optional(
      int('Machine CPU percent above which a pool scales up (ceil(workers × used / threshold))', { min: 1, max: 100 }),
      80,
    ),
    memory_threshold_percent: v.optional(
      int('Machine memory percent above which a pool scales up (ceil(workers × used / threshold))', { min: 1, max: 100 }),
      75,
    ),
    scale_interval_seconds: v.optional(num('Seconds between two evaluations of every pool', { min: 0.05 }), 5),
    scale_down_window_seconds: v.optional(
      num('A pool scales down only to the highest recommendation of this many seconds (scale-up is at once)', { min: 0 }),
      300,
    ),
    scale_tolerance: v.optional(
      num('Load within this fraction of the target per worker changes nothing (0.1: ±10%)', { min: 0, max: 1 }),
      0.1,
    ),
  }),
  v.forward(
    v.partialCheck(
      [['min_agent_runners'], ['max_agent_runners']],
      (r) => r.min_agent_runners <= r.max_agent_runners,
      (issue) => `must be <= max_agent_runners (${(issue.input as { max_agent_runners: number }).max_agent_runners})`,
    ),
    ['min_agent_runners'],
  ),
)

const performanceMonitoring = section('Collection and export of performance samples', {
  enabled: v.optional(bool('Activate performance sampling'), true),
  collection_interval_seconds: v.optional(num('Seconds between samples', { min: 0, exclusiveMin: true }), 5),
  export_formats: v.optional(enumList(['json', 'csv', 'none'], 'Formats the samples are exported in'), ['json']),
  export_path: v.optional(str('Directory for exported samples (relative to the working directory)'), './performance_logs/'),
  integrations: v.optional(
    section('External monitoring systems', {
      grafana_prometheus: v.optional(
        section('Prometheus (and Grafana on top of it) watching orch; orch serve always exposes Prometheus metrics at /metrics', {
          enabled: v.optional(
            bool(
              'Monitor orch with Prometheus and Grafana: `orch scale manifests` adds both, provisioned with the orch dashboard, and `orch doctor` checks that Prometheus scrapes this orch (docs/grafana.md)',
            ),
            false,
          ),
          endpoint: v.optional(
            httpUrl('URL of the Prometheus that scrapes orch; with enabled, `orch doctor` asks it whether this orch is up'),
            'http://localhost:9090',
          ),
        }),
        {},
      ),
    }),
    {},
  ),
})

const infrastructureSystem = v.pipe(
  section('Distributed runs, LLM batching and caching, scaling, monitoring', {
    enabled: v.optional(bool('Master switch; false runs everything locally in one process'), true),
    distributed_simulation: v.optional(distributedSimulation, {}),
    llm_orchestration: v.optional(
      section('LLM request batching and caching', {
        batching: v.optional(batching, {}),
        caching: v.optional(caching, {}),
      }),
      {},
    ),
    resource_management: v.optional(resourceManagement, {}),
    performance_monitoring: v.optional(performanceMonitoring, {}),
  }),
  // The Redis cache lives in the cluster's Redis, which only the Redis bus configures.
  v.forward(
    v.partialCheck(
      [
        ['llm_orchestration', 'caching', 'cache_backend'],
        ['distributed_simulation', 'event_bus_type'],
      ],
      (i: { llm_orchestration: { caching: { cache_backend: string } }; distributed_simulation: { event_bus_type: string } }) =>
        i.llm_orchestration.caching.cache_backend !== 'redis' || i.distributed_simulation.event_bus_type === 'redis',
      (issue) =>
        `cache_backend: redis needs infrastructure_system.distributed_simulation.event_bus_type: redis (it is ${JSON.stringify((issue.input as { distributed_simulation: { event_bus_type: string } }).distributed_simulation.event_bus_type)}); use sqlite or memory on one machine`,
    ),
    ['llm_orchestration', 'caching', 'cache_backend'] as const,
  ),
)

const modelSettings = section('Settings of one model', {
  context: v.optional(
    int(
      "Context window in tokens: sent to Ollama backends as options.num_ctx (chat, generate, embed) when a request sets none; informational on openai backends, whose API has no per-request context window. Unset: the backend's own default",
    ),
  ),
  temperature: v.optional(
    num(
      "Default sampling temperature of chat and generate requests to this model on backends of this provider (Ollama options.temperature, OpenAI temperature), used when a request sets none; a request's own value wins. Unset: the backend's own default. The response cache sees the value in effect: with 0 here, requests setting none count as deterministic (docs/http-api.md)",
      { min: 0, max: 2 },
    ),
  ),
  parallel: v.optional(bool('Whether requests to this model may run in parallel'), true),
})

const models = v.pipe(
  v.record(
    v.string(),
    v.pipe(
      v.record(v.string(), modelSettings, 'expected a mapping of model name to settings'),
      v.description('Models of one provider, by model name'),
      v.metadata({ keyName: 'model' }),
    ),
    'expected a mapping of provider to models',
  ),
  v.description(
    'Per-model settings, by provider (the backend type: ollama, openai) then model name (e.g. models.ollama["llama3.2"]; a name without a tag is the :latest one)',
  ),
  v.metadata({ keyName: 'provider' }),
)

export const DEFAULT_OLLAMA_CONCURRENCY = 2
type ProviderRuntime = { concurrency: number }

const runtime = v.pipe(
  v.record(
    v.string(),
    section('Runtime of one provider', {
      concurrency: v.optional(
        int('Calls in flight per backend of this type that sets no concurrency of its own (a default, not a cap over all of them)'),
        DEFAULT_OLLAMA_CONCURRENCY,
      ),
    }),
    'expected a mapping of provider to settings',
  ),
  // Listing another provider must not drop Ollama's default.
  v.transform((r): Record<string, ProviderRuntime> & { ollama: ProviderRuntime } => ({
    ollama: { concurrency: DEFAULT_OLLAMA_CONCURRENCY },
    ...r,
  })),
  v.description(
    'Per-backend defaults by backend type; ollama.concurrency (default 2) is the limit of each Ollama backend or pool worker without its own',
  ),
  v.metadata({ keyName: 'provider' }),
)

const heartbeatEntries = {
  enabled: v.optional(bool('Heartbeat monitoring of workers'), true),
  ping_interval_ms: v.optional(int('Milliseconds between pings'), 2000),
  timeout_ms: v.optional(int('Milliseconds to wait for a ping answer'), 10000),
  max_missed_heartbeats: v.optional(int('Missed pings before a worker is declared dead'), 3),
  initial_delay_ms: v.optional(nonNegativeInt('Milliseconds before the first ping'), 0),
  dependent: v.optional(
    bool('Worker is stopped when the orch process supervising it ends (its watchdog ends it). Not available in this version: false'),
    true,
  ),
}

const levelOrUnset = v.optional(oneOf(LOG_LEVELS, 'Level for this category; unset follows logging.level', { example: 'debug' }))
const categoryEntries = Object.fromEntries(LOG_CATEGORIES.map((c) => [c, levelOrUnset])) as {
  [K in (typeof LOG_CATEGORIES)[number]]: typeof levelOrUnset
}

const logging = section('Log levels (logs go to stderr)', {
  level: v.optional(oneOf(LOG_LEVELS, 'Global log level'), 'info'),
  categories: v.optional(section('Level per category, overriding logging.level', categoryEntries), {}),
})

const server = section('HTTP server of orch serve', {
  host: v.optional(str('Listen address; a non-loopback address requires server.token'), '127.0.0.1'),
  port: v.optional(port('Listen port'), 9097),
  token: v.optional(str('Bearer token clients must send (Authorization: Bearer TOKEN)', { example: 'change-me' })),
  body_limit_bytes: v.optional(int('Largest request body accepted, in bytes'), 1048576),
  body_timeout_ms: v.optional(int('Milliseconds a request body may take to arrive in full; later: 408, connection closed'), 30000),
  max_json_depth: v.optional(
    int('Deepest nesting of arrays and objects accepted in a JSON body (and in JSON inside it), checked before parsing', {
      max: 1000,
    }),
    64,
  ),
  max_open_requests: v.optional(
    nonNegativeInt('Requests handled at once (streams and SSE included); more are answered 503 at once and closed; 0: no bound'),
    4096,
  ),
  idle_timeout_s: v.optional(
    int(
      'Seconds a connection may stay silent (keep-alive, slow headers or body) before it is closed; model calls, streams and SSE are exempt',
      {
        max: 255,
      },
    ),
    30,
  ),
  allowed_hosts: v.optional(
    stringList('Extra host names accepted in Host and Origin headers (loopback names and server.host always are)', {
      example: ['orch.internal'],
    }),
    [],
  ),
})

const batch = section('orch batch: one folder under inputs_root is one batch', {
  inputs_root: v.optional(str('Folder holding one sub-folder per batch (relative to the working directory)'), 'Data/Inputs'),
  outputs_root: v.optional(str('Folder result.json files are written under'), 'Data/Outputs'),
  file_glob_patterns: v.optional(stringList('A batch is pending when a file at its root matches one of these globs'), ['*.json']),
  engine_command: v.optional(
    stringList('External engine command (argv); empty uses the built-in engine', { example: ['python', '-m', 'engine'] }),
    [],
  ),
  interval_seconds: v.optional(int('Seconds between scheduler ticks (orch batch schedule)'), 600),
  stale_lock_seconds: v.optional(int('A batch .lock older than this is reported as stale by orch batch status and orch doctor'), 3600),
  max_input_bytes: v.optional(int('Largest metric input file the built-in engine reads; a larger one is refused'), 16777216),
})

export const OrchConfigSchema = v.strictObject(
  {
    infrastructure_system: v.optional(infrastructureSystem, {}),
    models: v.optional(models, {}),
    runtime: v.optional(runtime, { ollama: { concurrency: DEFAULT_OLLAMA_CONCURRENCY } }),
    pools: v.optional(poolsSchema(), []),
    pool_startup_timeout: v.optional(int('Milliseconds a worker may take to become healthy'), 10000),
    heartbeat: v.optional(section('Worker heartbeats (defaults for every pool)', heartbeatEntries), {}),
    crash_barrier: v.optional(
      section('Stop restarting a worker that keeps crashing', {
        enabled: v.optional(bool('Activate the crash barrier'), true),
        max_restarts: v.optional(int('Restarts allowed within window_seconds'), 5),
        window_seconds: v.optional(int('Window in seconds over which restarts are counted'), 60),
      }),
      {},
    ),
    circuit_breaker: v.optional(
      section('Fail fast on a backend that keeps failing', {
        enabled: v.optional(bool('Activate the circuit breaker'), true),
        failure_threshold: v.optional(int('Consecutive failures that open the circuit'), 5),
        reset_timeout_ms: v.optional(int('Milliseconds the circuit stays open before a trial request'), 30000),
        wait_for_close: v.optional(
          bool('true: a request for an open circuit waits (within pool_queue_timeout) for it to close instead of failing at once'),
          false,
        ),
      }),
      {},
    ),
    tasks: v.optional(
      section('The durable task queue (state.db)', {
        max_attempts: v.optional(int('Attempts of a task before it fails (retryable errors only)'), 3),
        max_stalled: v.optional(nonNegativeInt('Times a task may lose its runner (lease expired) before it fails as stalled'), 1),
        lease_ms: v.optional(int('Milliseconds a claim lasts unless renewed; a runner renews at a third of it'), 30000),
        retry_base_ms: v.optional(int('First retry delay in milliseconds; doubles per attempt, with jitter'), 1000),
        retry_max_ms: v.optional(int('Longest retry delay in milliseconds'), 60000),
        priority_aging_ms: v.optional(int('A waiting task gains one priority level per this many milliseconds'), 10000),
        retention_hours: v.optional(num('Finished tasks and their results are pruned after this many hours', { min: 0 }), 168),
        max_queued: v.optional(
          nonNegativeInt(
            'Most tasks queued at once over all tenants; a submission past it is refused with 429 and Retry-After (0: no bound)',
          ),
          1000000,
        ),
        max_queued_per_tenant: v.optional(
          nonNegativeInt(
            'Most tasks one tenant may have queued at once, so one tenant cannot fill the queue for the others; past it that tenant is refused with 429 (0: no bound)',
          ),
          100000,
        ),
        synchronous: v.optional(
          oneOf(['FULL', 'NORMAL'], 'FULL: every commit reaches the disk; NORMAL: faster, may lose the last commits on power loss'),
          'FULL',
        ),
      }),
      {},
    ),
    backend_timeouts: v.optional(
      section('Timeouts of every call to a model backend, in milliseconds', {
        connect_ms: v.optional(
          int(
            'Until response headers arrive, for health and model-list calls (model calls are bounded by first_token_ms, as Ollama sends headers only with the first token)',
          ),
          5000,
        ),
        first_token_ms: v.optional(int('Until the first streamed chunk (includes model load time)'), 120000),
        idle_ms: v.optional(
          int('Longest gap between two streamed chunks; for health and model-list calls, the wait for the body after its headers'),
          30000,
        ),
        total_ms: v.optional(int('Whole call, first byte to last'), 600000),
      }),
      {},
    ),
    pool_queue_timeout: v.optional(
      int(
        'Milliseconds a request may wait in the queue; one that, by the measured service time, cannot get a slot within it is refused at once (503)',
      ),
      5000,
    ),
    pool_max_queue_size: v.optional(int('Queued requests before new ones are rejected'), 1000),
    graceful_shutdown_timeout_ms: v.optional(int('Milliseconds between SIGTERM and SIGKILL when stopping workers'), 6000),
    logging: v.optional(logging, {}),
    server: v.optional(server, {}),
    backends: v.optional(backendsSchema(), []),
    batch: v.optional(batch, {}),
  },
  'expected a mapping of keys to values',
)

export type OrchConfig = v.InferOutput<typeof OrchConfigSchema>
export type OrchConfigInput = v.InferInput<typeof OrchConfigSchema>
export type PoolConfig = OrchConfig['pools'][number]
export type BackendConfig = OrchConfig['backends'][number]
export type HeartbeatConfig = OrchConfig['heartbeat']

/** The complete configuration with nothing set. */
export function defaultConfig(): OrchConfig {
  return v.parse(OrchConfigSchema, {})
}
