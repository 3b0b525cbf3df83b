import { describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import YAML from 'yaml'
import { renderConfigDocs } from '../../src/config/docs.ts'
import { ENV_VARS } from '../../src/config/env.ts'
import { EXAMPLE_ITEMS, renderExampleConfig } from '../../src/config/example.ts'
import { parseDuration } from '../../src/config/fields.ts'
import { describeKeys, docPath, kindAt } from '../../src/config/keys.ts'
import { validateConfigFile } from '../../src/config/load.ts'
import { formatPath, getPath, type PathSegment, parsePath } from '../../src/config/paths.ts'
import { checkPools, poolHeartbeat } from '../../src/config/pools.ts'
import { defaultConfig } from '../../src/config/schema.ts'
import { isUnavailable, isUnavailableKey } from '../../src/config/unavailable.ts'
import { validateData } from '../../src/config/validate.ts'
import { ROOT } from '../helpers/cli.ts'

/** Issues as `path: message` lines, the way a user reads them. */
function problems(data: unknown): string[] {
  return validateData(data).issues.map((i) => `${formatPath(i.segments)}: ${i.message}`)
}

describe('defaults', () => {
  test('{} parses to a complete config with the documented defaults', () => {
    const config = defaultConfig()
    expect(config.infrastructure_system.enabled).toBe(true)
    expect(config.infrastructure_system.distributed_simulation.event_bus_type).toBe('local_memory')
    expect(config.infrastructure_system.distributed_simulation.redis_port).toBe(6379)
    expect(config.infrastructure_system.llm_orchestration.batching).toEqual({
      enabled: true,
      batch_size: 50,
      batch_interval_seconds: 0.1,
      max_concurrent_batches: 5,
    })
    expect(config.infrastructure_system.llm_orchestration.caching.cache_backend).toBe('sqlite')
    expect(config.infrastructure_system.llm_orchestration.caching.cache_ttl_seconds).toBe(86400)
    expect(config.infrastructure_system.llm_orchestration.caching.mode).toBe('deterministic')
    // Features this version does not have are off by default (setting them on is refused: unavailable.ts).
    expect(config.infrastructure_system.distributed_simulation.enabled).toBe(false)
    expect(config.infrastructure_system.resource_management).toMatchObject({
      auto_scaling_enabled: false,
      min_agent_runners: 1,
      max_agent_runners: 10,
      cpu_threshold_percent: 80,
    })
    expect(config.infrastructure_system.performance_monitoring.export_formats).toEqual(['json'])
    expect(config.infrastructure_system.performance_monitoring.integrations.grafana_prometheus.endpoint).toBe('http://localhost:9090')
    expect(config.models).toEqual({})
    expect(config.runtime).toEqual({ ollama: { concurrency: 2 } })
    expect(config.pools).toEqual([])
    expect(config.heartbeat).toEqual({
      enabled: true,
      ping_interval_ms: 2000,
      timeout_ms: 10000,
      max_missed_heartbeats: 3,
      initial_delay_ms: 0,
      dependent: true,
    })
    expect(config.crash_barrier).toEqual({ enabled: true, max_restarts: 5, window_seconds: 60 })
    expect(config.circuit_breaker).toEqual({ enabled: true, failure_threshold: 5, reset_timeout_ms: 30000, wait_for_close: false })
    expect(config.tasks).toEqual({
      max_attempts: 3,
      max_stalled: 1,
      lease_ms: 30000,
      retry_base_ms: 1000,
      retry_max_ms: 60000,
      priority_aging_ms: 10000,
      retention_hours: 168,
      max_queued: 1000000,
      max_queued_per_tenant: 100000,
      synchronous: 'FULL',
    })
    expect(config.backend_timeouts).toEqual({ connect_ms: 5000, first_token_ms: 120000, idle_ms: 30000, total_ms: 600000 })
    expect([
      config.pool_startup_timeout,
      config.pool_queue_timeout,
      config.pool_max_queue_size,
      config.graceful_shutdown_timeout_ms,
    ]).toEqual([10000, 5000, 1000, 6000])
    expect(config.logging).toEqual({ level: 'info', categories: {} })
    expect(config.server).toEqual({
      host: '127.0.0.1',
      port: 9097,
      body_limit_bytes: 1048576,
      body_timeout_ms: 30000,
      max_json_depth: 64,
      max_open_requests: 4096,
      idle_timeout_s: 30,
      allowed_hosts: [],
    })
    expect(config.backends).toEqual([{ name: 'ollama', type: 'ollama', url: 'http://127.0.0.1:11434' }]) // concurrency: runtime.ollama.concurrency
    expect(config.batch).toEqual({
      inputs_root: 'Data/Inputs',
      outputs_root: 'Data/Outputs',
      file_glob_patterns: ['*.json'],
      engine_command: [],
      interval_seconds: 600,
      stale_lock_seconds: 3600,
      max_input_bytes: 16777216,
    })
  })

  test('a pool gets its defaults, and health_path and api follow its profile', () => {
    const { config } = validateData({ pools: [{ name: 'a' }, { name: 'b', profile: 'command', command: ['srv', '{port}'] }] })
    const [a, b] = config?.pools ?? []
    expect(a).toMatchObject({ profile: 'ollama', pool_size: 1, startup_batch_size: 8, startup_batch_delay_ms: 750, worker_ttl: 'infinity' })
    expect(a).toMatchObject({ worker_max_requests: 'infinity', health_path: '/api/tags', api: 'ollama', env: {}, gpus: [], depends_on: [] })
    expect(b).toMatchObject({ health_path: '/health', api: 'openai' })
  })

  test("a pool's heartbeat: each key it overrides, the global heartbeat's for the rest", () => {
    const { config } = validateData({
      heartbeat: { ping_interval_ms: 500 },
      pools: [{ name: 'a', heartbeat: { timeout_ms: 50, enabled: false } }],
    })
    const global = config?.heartbeat as NonNullable<typeof config>['heartbeat']
    expect(poolHeartbeat(global, config?.pools[0]?.heartbeat)).toEqual({
      enabled: false,
      ping_interval_ms: 500,
      timeout_ms: 50,
      max_missed_heartbeats: 3,
      initial_delay_ms: 0,
    })
    expect(poolHeartbeat(global, undefined)).toEqual({
      enabled: true,
      ping_interval_ms: 500,
      timeout_ms: 10000,
      max_missed_heartbeats: 3,
      initial_delay_ms: 0,
    })
  })

  test("a model's context and temperature have no default (unset: the backend's own), and are kept when set", () => {
    const { config } = validateData({ models: { ollama: { 'llama3.2': {}, 'qwen3:8b': { context: 32768, temperature: 0 } } } })
    expect(config?.models).toEqual({
      ollama: { 'llama3.2': { parallel: true }, 'qwen3:8b': { context: 32768, temperature: 0, parallel: true } },
    })
  })

  test('durations resolve to seconds; child env values become strings; runtime keeps ollama', () => {
    const { config } = validateData({
      pools: [
        { name: 'a', worker_ttl: '30m', env: { OMP_NUM_THREADS: 1, DEBUG: true } },
        { name: 'b', worker_ttl: 90 },
      ],
      runtime: { openai: { concurrency: 8 } },
    })
    expect(config?.pools.map((p) => p.worker_ttl)).toEqual([1800, 90])
    expect(config?.pools[0]?.env).toEqual({ OMP_NUM_THREADS: '1', DEBUG: 'true' })
    expect(config?.runtime).toEqual({ ollama: { concurrency: 2 }, openai: { concurrency: 8 } })
    expect([
      parseDuration('1h'),
      parseDuration('500ms'),
      parseDuration('2d'),
      parseDuration('infinity'),
      parseDuration('0'),
      parseDuration('soon'),
    ]).toEqual([3600, 0.5, 172800, 'infinity', undefined, undefined])
  })
})

// One bad value per section (and per kind of check): the message names the key path and says what was expected.
const BAD: Array<[string, unknown, string]> = [
  ['infra enabled', { infrastructure_system: { enabled: 'yes' } }, 'infrastructure_system.enabled: expected true or false, got "yes"'],
  [
    'event bus',
    { infrastructure_system: { distributed_simulation: { event_bus_type: 'rabbit' } } },
    'infrastructure_system.distributed_simulation.event_bus_type: expected one of "local_memory", "redis", "kafka", got "rabbit"',
  ],
  [
    'redis port',
    { infrastructure_system: { distributed_simulation: { redis_port: 70000 } } },
    'redis_port: expected an integer 1-65535, got 70000',
  ],
  [
    'batch size',
    { infrastructure_system: { llm_orchestration: { batching: { batch_size: 0 } } } },
    'batching.batch_size: expected a positive integer, got 0',
  ],
  [
    'batch interval',
    { infrastructure_system: { llm_orchestration: { batching: { batch_interval_seconds: -1 } } } },
    'batch_interval_seconds: expected a number >= 0, got -1',
  ],
  [
    'cache backend',
    { infrastructure_system: { llm_orchestration: { caching: { cache_backend: 'disk' } } } },
    'caching.cache_backend: expected one of "sqlite", "redis", "memory", got "disk"',
  ],
  [
    'cache mode',
    { infrastructure_system: { llm_orchestration: { caching: { mode: 'never' } } } },
    'caching.mode: expected one of "deterministic", "always", got "never"',
  ],
  [
    'cpu threshold',
    { infrastructure_system: { resource_management: { cpu_threshold_percent: 101 } } },
    'cpu_threshold_percent: expected an integer 1-100, got 101',
  ],
  [
    'min > max runners',
    { infrastructure_system: { resource_management: { min_agent_runners: 5, max_agent_runners: 2 } } },
    'infrastructure_system.resource_management.min_agent_runners: must be <= max_agent_runners (2)',
  ],
  [
    'export formats',
    { infrastructure_system: { performance_monitoring: { export_formats: ['xml'] } } },
    'export_formats[0]: expected a list of "json", "csv", "none", got "xml"',
  ],
  [
    'prometheus endpoint',
    { infrastructure_system: { performance_monitoring: { integrations: { grafana_prometheus: { endpoint: 'ftp://x' } } } } },
    'grafana_prometheus.endpoint: expected an http(s) URL, got "ftp://x"',
  ],
  [
    'model temperature',
    { models: { ollama: { 'llama3.2': { temperature: 3 } } } },
    'models.ollama["llama3.2"].temperature: expected a number 0-2, got 3',
  ],
  ['models shape', { models: { ollama: 'llama3.2' } }, 'models.ollama: expected a mapping of model name to settings, got "llama3.2"'],
  ['runtime concurrency', { runtime: { ollama: { concurrency: 0 } } }, 'runtime.ollama.concurrency: expected a positive integer, got 0'],
  ['pool size', { pools: [{ name: 'a' }, { name: 'b', pool_size: 'ten' }] }, 'pools[1].pool_size: expected a positive integer, got "ten"'],
  ['pool name missing', { pools: [{ pool_size: 2 }] }, 'pools[0].name: missing; this key is required'],
  ['pool name unsafe', { pools: [{ name: '../x' }] }, 'pools[0].name: expected a name of letters'],
  ['duplicate pool', { pools: [{ name: 'a' }, { name: 'a' }] }, 'pools[1].name: duplicate pool name "a"'],
  [
    'unknown dependency',
    { pools: [{ name: 'gpu' }, { name: 'b', depends_on: ['gpv'] }] },
    'pools[1].depends_on: unknown pool "gpv"; did you mean "gpu"?',
  ],
  ['self dependency', { pools: [{ name: 'a', depends_on: ['a'] }] }, 'pools[0].depends_on: a pool cannot depend on itself'],
  [
    'dependency cycle',
    {
      pools: [
        { name: 'a', depends_on: ['b'] },
        { name: 'b', depends_on: ['c'] },
        { name: 'c', depends_on: ['a'] },
      ],
    },
    'pools[0].depends_on: dependency cycle: a -> b -> c -> a',
  ],
  ['command missing', { pools: [{ name: 'a', profile: 'command' }] }, 'pools[0].command: required when profile is "command"'],
  ['worker ttl', { pools: [{ name: 'a', worker_ttl: '30x' }] }, 'pools[0].worker_ttl: expected a duration'],
  [
    'max requests',
    { pools: [{ name: 'a', worker_max_requests: 0 }] },
    'pools[0].worker_max_requests: expected a positive integer or "infinity", got 0',
  ],
  ['gpus', { pools: [{ name: 'a', gpus: [-1] }] }, 'pools[0].gpus[0]: expected a list of non-negative integers, got -1'],
  ['pool env key', { pools: [{ name: 'a', env: { '1BAD': 'x' } }] }, 'pools[0].env["1BAD"]: expected an environment variable name'],
  [
    'pool heartbeat',
    { pools: [{ name: 'a', heartbeat: { ping_interval_ms: 0 } }] },
    'pools[0].heartbeat.ping_interval_ms: expected a positive integer, got 0',
  ],
  [
    'health path',
    { pools: [{ name: 'a', health_path: 'health' }] },
    'pools[0].health_path: expected a path starting with "/", got "health"',
  ],
  ['global heartbeat', { heartbeat: { timeout_ms: 1.5 } }, 'heartbeat.timeout_ms: expected a positive integer, got 1.5'],
  ['crash barrier', { crash_barrier: { max_restarts: 'five' } }, 'crash_barrier.max_restarts: expected a positive integer, got "five"'],
  ['circuit breaker', { circuit_breaker: { enabled: 1 } }, 'circuit_breaker.enabled: expected true or false, got 1'],
  ['queue timeout', { pool_queue_timeout: -5 }, 'pool_queue_timeout: expected a positive integer, got -5'],
  [
    'log level',
    { logging: { level: 'verbose' } },
    'logging.level: expected one of "debug", "info", "warning", "error", "none", got "verbose"',
  ],
  ['log category', { logging: { categories: { pool: 'loud' } } }, 'logging.categories.pool: expected one of "debug"'],
  ['server port', { server: { port: 'abc' } }, 'server.port: expected an integer 1-65535, got "abc"'],
  ['server host', { server: { host: '' } }, 'server.host: expected a non-empty string, got ""'],
  ['section shape', { server: 8080 }, 'server: expected a mapping of keys to values, got 8080'],
  ['backend url', { backends: [{ name: 'x', url: 'not a url' }] }, 'backends[0].url: expected an http(s) URL, got "not a url"'],
  ['backend url missing', { backends: [{ name: 'x' }] }, 'backends[0].url: missing; this key is required'],
  [
    'duplicate backend',
    {
      backends: [
        { name: 'x', url: 'http://a' },
        { name: 'x', url: 'http://b' },
      ],
    },
    'backends[1].name: duplicate backend name "x"',
  ],
  [
    'backend type',
    { backends: [{ name: 'x', url: 'http://a', type: 'vllm' }] },
    'backends[0].type: expected one of "ollama", "openai", got "vllm"',
  ],
  [
    'batch globs',
    { batch: { file_glob_patterns: '*.json' } },
    'batch.file_glob_patterns: expected a list of non-empty strings, got "*.json"',
  ],
  ['batch interval', { batch: { interval_seconds: 0 } }, 'batch.interval_seconds: expected a positive integer, got 0'],
  ['engine command', { batch: { engine_command: ['python', 3] } }, 'batch.engine_command[1]: expected a list of non-empty strings, got 3'],
]

describe('validation messages', () => {
  test.each(BAD)('%s', (_, data, expected) => {
    const found = problems(data)
    expect(found.some((line) => line.includes(expected))).toBe(true)
    // Nothing else is wrong in these inputs, so nothing else may be reported.
    expect(found).toHaveLength(1)
  })

  test('every problem is reported at once', () => {
    const all = Object.assign({}, ...BAD.map(([, data]) => data).filter((d) => !('pools' in (d as object))))
    expect(problems(all).length).toBeGreaterThan(5)
    const many = problems({ server: { port: 'x', host: '' }, batch: { interval_seconds: -1 }, logging: { level: 'loud' } })
    expect(many).toHaveLength(4)
  })

  test('unknown keys get a did-you-mean, and all of them are reported, not just the first', () => {
    const found = problems({ pools: [{ name: 'a', pool_sise: 3, worker_tll: '1h' }], sever: {} })
    expect(found).toContain('pools[0].pool_sise: unknown key "pool_sise"; did you mean "pool_size"?')
    expect(found).toContain('pools[0].worker_tll: unknown key "worker_tll"; did you mean "worker_ttl"?')
    expect(found).toContain('sever: unknown key "sever"; did you mean "server"?')
  })

  test('an unknown key with no close match lists the valid keys of a small section', () => {
    expect(problems({ crash_barrier: { zzz: 1 } })).toEqual([
      'crash_barrier.zzz: unknown key "zzz"; expected one of: enabled, max_restarts, window_seconds',
    ])
  })

  test('checkPools works on partly invalid input', () => {
    expect(checkPools([{ name: 'a', depends_on: ['b'] }, 'junk', { name: 'b', depends_on: ['a'] }])).toEqual([
      { index: 0, key: 'depends_on', message: 'dependency cycle: a -> b -> a' },
    ])
  })
})

describe('keys and env table', () => {
  const keys = describeKeys()
  const leaves = keys.filter((k) => k.node === 'leaf')

  test('every key has a description and every leaf a value kind', () => {
    expect(leaves.length).toBeGreaterThan(90)
    for (const key of keys) expect(`${key.path}: ${key.description}`).not.toMatch(/: $/)
    for (const leaf of leaves) expect(leaf.kind).toBeDefined()
  })

  test('every env row names an existing key of the matching type', () => {
    const names = ENV_VARS.map((e) => e.name)
    expect(new Set(names).size).toBe(names.length)
    for (const row of ENV_VARS) {
      expect(row.name).toMatch(/^ORCH_[A-Z_]+$/)
      if (row.path === undefined) continue
      const kind = kindAt(parsePath(row.path) ?? [])
      expect(`${row.name} ${kind === 'enum' ? 'string' : kind}`).toBe(`${row.name} ${row.type}`)
    }
  })

  test('the env table covers the variables orch promises', () => {
    const promised =
      `ORCH_CONFIG ORCH_ENV ORCH_HOME ORCH_LOG_LEVEL ORCH_SERVER_HOST ORCH_SERVER_PORT ORCH_SERVER_TOKEN ORCH_BODY_LIMIT_BYTES
      ORCH_INFRA_ENABLED ORCH_EVENT_BUS ORCH_REDIS_HOST ORCH_REDIS_PORT ORCH_AGENT_RUNNER_CONCURRENCY ORCH_BATCHING_ENABLED ORCH_CACHE_ENABLED
      ORCH_CACHE_BACKEND ORCH_CACHE_PATH ORCH_CACHE_TTL_SECONDS ORCH_POOL_QUEUE_TIMEOUT ORCH_POOL_MAX_QUEUE_SIZE ORCH_GRACEFUL_SHUTDOWN_TIMEOUT_MS
      ORCH_OLLAMA_CONCURRENCY ORCH_BATCH_INPUTS_ROOT ORCH_BATCH_OUTPUTS_ROOT ORCH_BATCH_INTERVAL_SECONDS ORCH_MONITORING_ENABLED
      ORCH_MONITORING_EXPORT_PATH ORCH_MIN_AGENT_RUNNERS ORCH_MAX_AGENT_RUNNERS ORCH_OLLAMA_URL`.split(/\s+/)
    const names = new Set(ENV_VARS.map((e) => e.name))
    expect(promised.filter((name) => !names.has(name))).toEqual([])
  })
})

describe('config/orch.example.yaml', () => {
  const file = join(ROOT, 'config/orch.example.yaml')
  const text = readFileSync(file, 'utf8')
  const keys = describeKeys()

  test('is what the generator writes', () => {
    expect(text).toBe(renderExampleConfig())
  })

  test('validates, and its active part is exactly the default configuration', () => {
    expect(validateConfigFile(file)).toEqual([])
    expect(validateData(YAML.parse(text)).config).toEqual(defaultConfig())
  })

  test('sets every leaf that has a default, and shows every other key commented out', () => {
    const data = YAML.parse(text)
    for (const key of keys.filter((k) => k.node === 'leaf' && !k.inItem)) {
      // A default this version refuses when set (min_agent_runners) is shown, commented out.
      if (key.hasDefault && isUnavailable(key.path, key.default)) {
        expect(`${key.path} = ${JSON.stringify(getPath(data, parsePath(key.path) ?? []))}`).toBe(`${key.path} = undefined`)
        expect(text).toMatch(new RegExp(`^\\s*#\\s+${key.path.split('.').at(-1)}: ${JSON.stringify(key.default).replace(/"/g, '')}$`, 'm'))
      } else if (key.hasDefault)
        expect(`${key.path} = ${JSON.stringify(getPath(data, parsePath(key.path) ?? []))}`).toBe(
          `${key.path} = ${JSON.stringify(key.default)}`,
        )
      else expect(text).toMatch(new RegExp(`^\\s*#\\s+${key.path.split('.').at(-1)}: `, 'm'))
    }
    // runtime's entries are items of a mapping, written out active because the default has one.
    expect(data.runtime).toEqual({ ollama: { concurrency: 2 } })
  })

  test('its commented examples validate and use every key of list items and mapping entries', () => {
    const { config, issues } = validateData(EXAMPLE_ITEMS)
    expect(issues).toEqual([])
    expect(config).toBeDefined()
    const used = new Set<string>()
    const walk = (value: unknown, segments: PathSegment[]) => {
      used.add(docPath(segments))
      if (Array.isArray(value) && value.some((v) => typeof v === 'object')) {
        for (const [i, item] of value.entries()) walk(item, [...segments, i])
      } else if (value && typeof value === 'object' && !Array.isArray(value))
        for (const [k, v] of Object.entries(value)) walk(v, [...segments, k])
    }
    walk(EXAMPLE_ITEMS, [])
    // runtime's entries are active in the file (its default), not in the commented examples.
    // Keys that take no value in this version are left out of the examples.
    const missing = keys.filter(
      (k) => k.node === 'leaf' && k.inItem && !k.path.startsWith('runtime.') && !isUnavailableKey(k.path) && !used.has(k.path),
    )
    expect(missing.map((k) => k.path)).toEqual([])
    // Each commented item line is in the file.
    expect(text).toContain('#     command: [llama-server, --port, "{port}", -m, "{model}"]')
  })
})

describe('docs/configuration.md', () => {
  const text = readFileSync(join(ROOT, 'docs/configuration.md'), 'utf8')

  test('is what the generator writes', () => {
    expect(text).toBe(renderConfigDocs())
  })

  test('names every key and every environment variable', () => {
    const missingKeys = describeKeys().filter((k) => !text.includes(`\`${k.path}\``))
    expect(missingKeys.map((k) => k.path)).toEqual([])
    const missingVars = ENV_VARS.filter((e) => !text.includes(`\`${e.name}\``))
    expect(missingVars.map((e) => e.name)).toEqual([])
    expect(text).toContain('## Where values come from')
  })
})
