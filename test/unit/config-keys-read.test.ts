/**
 * Every leaf key of the schema is read by the code that runs orch, or refused by the config verdict: a key
 * nothing reads would pass `orch config validate` and change nothing, and this test fails on it.
 *
 * How: the resolved configuration is wrapped in a recording Proxy (deep; a list item records as `pools[]`,
 * a mapping entry as `models.<provider>`), then handed to the real consumers that take a config: the
 * engine (scheduler options, backends, cache, batcher), `startServe` (server, task store and runner,
 * metrics sampler) with real HTTP calls against it and a fake Ollama behind it, the pool supervisor with
 * real worker processes, the doctor's gatherers, the cache opener, logging, and the refusal check. Only a
 * read of one key counts: object spread, Object.entries/values and JSON.stringify read every key of a
 * section at once, and are recorded apart (ownKeys, then a descriptor, then a get of that key). The
 * refusal check's reads count only for keys it demonstrably refuses (a file setting them is refused at
 * that key), so a check that merely looked at a key would not do.
 *
 * Gates: a key whose only effect is to allow another key's value (`distributed_simulation.enabled`, which
 * `event_bus_type: redis` needs) counts when a file setting it alone is refused at that key.
 *
 * Static part: `orch batch` reads interval_seconds, engine_command and max_input_bytes in
 * commands/batch.ts after resolving its own config from files (no function there takes a config), so for
 * those three keys the test looks for the read in that file's code, comments and strings left out.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as v from 'valibot'
import { createCache } from '../../src/cache/index.ts'
import { describeKeys, docPath, schemaAt } from '../../src/config/keys.ts'
import { validateConfigFile } from '../../src/config/load.ts'
import { type PathSegment, parsePath } from '../../src/config/paths.ts'
import { type OrchConfig, OrchConfigSchema } from '../../src/config/schema.ts'
import { UNAVAILABLE, unavailableIssues } from '../../src/config/unavailable.ts'
import { configureLogging, LOG_CATEGORIES, logger } from '../../src/core/log.ts'
import { gatherBatchLocks, gatherPorts, gatherPrometheus } from '../../src/doctor/run.ts'
import { Supervisor } from '../../src/pool/supervisor.ts'
import { Autoscaler } from '../../src/scale/autoscaler.ts'
import { monitoringEnabled } from '../../src/scale/manifests-monitoring.ts'
import { Engine } from '../../src/scheduler/engine.ts'
import { startServe } from '../../src/server/serve.ts'
import { openStore } from '../../src/store/db.ts'
import { redisSettings } from '../../src/store/redis.ts'
import { ROOT, tempDir } from '../helpers/cli.ts'
import { type FakeServer, startFakeOllama } from '../helpers/fake-ollama.ts'
import { startFakeOpenAI } from '../helpers/fake-openai.ts'
import { tinyModelPath } from '../helpers/tiny-model.ts'

const LEAVES = describeKeys()
  .filter((k) => k.node === 'leaf')
  .map((k) => k.path)
const LEAF_SET = new Set(LEAVES)

interface Recording {
  /** Docs paths read one by one. */
  reads: Set<string>
  /** Docs paths read only as part of a whole section (spread, Object.entries, JSON.stringify). */
  bulk: Set<string>
}

/** A deep recording Proxy over a config; leaves are returned as they are (a leaf list or map is one value). */
function recorder(): Recording & { wrap: <T extends object>(config: T) => T } {
  const reads = new Set<string>()
  const bulk = new Set<string>()
  const proxies = new WeakMap<object, object>()
  const wrap = <T extends object>(value: T, segments: PathSegment[]): T => {
    const known = proxies.get(value)
    if (known) return known as T
    // Keys listed by ownKeys, then those of them whose descriptor was asked for: a get of one of these
    // right after is a whole-section read (spread, Object.entries), not a read of that key.
    const listed = new Set<PropertyKey>()
    const described = new Set<PropertyKey>()
    const proxy = new Proxy(value, {
      ownKeys(target) {
        const keys = Reflect.ownKeys(target)
        listed.clear()
        described.clear()
        for (const key of keys) listed.add(key)
        return keys
      },
      getOwnPropertyDescriptor(target, key) {
        if (listed.delete(key)) described.add(key)
        return Reflect.getOwnPropertyDescriptor(target, key)
      },
      get(target, key, receiver) {
        const child = Reflect.get(target, key, receiver)
        if (typeof key === 'symbol') return child
        const segment: PathSegment | undefined = Array.isArray(target) ? (/^\d+$/.test(key) ? Number(key) : undefined) : key
        // Array methods and `length`, and anything that is not a config key (toJSON, then).
        if (segment === undefined) return child
        const path = [...segments, segment]
        if (schemaAt(path) === undefined) return child
        const docs = docPath(path)
        if (described.delete(key)) bulk.add(docs)
        else reads.add(docs)
        if (LEAF_SET.has(docs) || child === null || typeof child !== 'object') return child
        return wrap(child as object, path)
      },
    })
    proxies.set(value, proxy)
    return proxy as T
  }
  return { reads, bulk, wrap: (config) => wrap(config, []) }
}

describe('the recording proxy', () => {
  test('records single reads by docs path, and whole-section reads apart', () => {
    const rec = recorder()
    const config = rec.wrap(v.parse(OrchConfigSchema, { pools: [{ name: 'a' }], models: { ollama: { m: { parallel: false } } } }))
    void config.server.port
    void config.pools[0]?.pool_size
    for (const models of Object.values(config.models)) for (const settings of Object.values(models)) void settings.parallel
    void { ...config.heartbeat }
    void JSON.stringify(config.tasks)
    void (Object.hasOwn(config.runtime, 'ollama') && config.runtime.ollama?.concurrency)
    expect([...rec.reads].sort()).toEqual(
      [
        'server',
        'server.port',
        'pools',
        'pools[]',
        'pools[].pool_size',
        'models',
        'models.<provider>.<model>.parallel',
        'heartbeat',
        'tasks',
        'runtime',
        'runtime.<provider>',
        'runtime.<provider>.concurrency',
      ].sort(),
    )
    expect(rec.bulk.has('heartbeat.enabled')).toBe(true)
    expect(rec.bulk.has('tasks.max_attempts')).toBe(true)
    expect(rec.reads.has('heartbeat.enabled')).toBe(false)
  })
})

/** Code of a TypeScript file with comments and string literals blanked out (template `${}` parts too). */
function codeOnly(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*|'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|`(?:[^`\\]|\\.)*`/g, (m) =>
    m.replace(/[^\n]/g, ' '),
  )
}

/** Keys read where no consumer takes a config object (see the header): docs path → file that reads it. */
const STATIC_READS: Record<string, string> = {
  'batch.interval_seconds': 'commands/batch.ts',
  'batch.engine_command': 'commands/batch.ts',
  'batch.max_input_bytes': 'commands/batch.ts',
}

/**
 * Keys that only gate another key (the cross-key checks of the schema): set alone to this value, each is
 * refused at its own key. `distributed_simulation.enabled: true` must come with `event_bus_type: redis`.
 */
const GATES: Record<string, unknown> = {
  'infrastructure_system.distributed_simulation.enabled': true,
}

const MODEL_SERVER = join(ROOT, 'test/helpers/model-server.ts')

/** Data where every key has a value, so that every read can happen. */
function fullData(opts: { ollama: string; openai: string; dir: string }): Record<string, unknown> {
  return {
    infrastructure_system: {
      enabled: true,
      distributed_simulation: { agent_runner_concurrency: 8 },
      llm_orchestration: {
        batching: { enabled: true, batch_size: 4, batch_interval_seconds: 0.01, max_concurrent_batches: 2 },
        caching: { enabled: true, cache_backend: 'sqlite', cache_path: join(opts.dir, 'cache.db'), mode: 'deterministic' },
      },
      performance_monitoring: {
        enabled: true,
        collection_interval_seconds: 0.02,
        export_formats: ['json', 'csv'],
        export_path: join(opts.dir, 'perf'),
        integrations: { grafana_prometheus: { enabled: true, endpoint: 'http://127.0.0.1:1' } },
      },
    },
    models: { ollama: { m: { parallel: false, context: 4096, temperature: 0.2 } }, openai: { m: { temperature: 0.3 } } },
    runtime: { ollama: { concurrency: 2 }, openai: { concurrency: 3 } },
    backends: [
      { name: 'local', type: 'ollama', url: opts.ollama, models: ['m'], concurrency: 2, api_key_env: 'KEYS_READ_TEST_TOKEN' },
      { name: 'compat', type: 'openai', url: opts.openai },
    ],
    logging: { level: 'error', categories: Object.fromEntries(LOG_CATEGORIES.map((c) => [c, 'error'])) },
    server: { token: 'a-token-of-twenty-chars', allowed_hosts: ['orch.test'] },
    tasks: { synchronous: 'NORMAL' },
    graceful_shutdown_timeout_ms: 500,
    batch: { inputs_root: join(opts.dir, 'inputs'), outputs_root: join(opts.dir, 'outputs') },
  }
}

/** Pools for the supervisor: one that serves (two workers, in two startup batches), one that crashes. */
function poolData(): unknown[] {
  return [
    {
      name: 'serving',
      profile: 'command',
      pool_size: 2,
      startup_batch_size: 1,
      startup_batch_delay_ms: 10,
      worker_ttl: 'infinity',
      worker_max_requests: 'infinity',
      env: { KEYS_READ_TEST: '1' },
      heartbeat: { enabled: true, ping_interval_ms: 20, timeout_ms: 500, max_missed_heartbeats: 5, initial_delay_ms: 0, dependent: true },
      models: ['m'],
      gpus: [0],
      depends_on: [],
      command: [process.execPath, MODEL_SERVER, '--port', '{port}', '--model', '{model}'],
      health_path: '/health',
      api: 'ollama',
    },
    {
      name: 'engine',
      profile: 'llamacpp',
      model: tinyModelPath(),
      llamacpp: { gpu_layers: 0, threads: 1, context_size: 512, parallel: 2, node_llama_cpp_path: ROOT },
    },
    {
      name: 'crashing',
      profile: 'command',
      depends_on: ['serving'],
      command: [process.execPath, MODEL_SERVER, '--port', '{port}', '--crash-on-start'],
    },
  ]
}

const parse = (data: unknown): OrchConfig => v.parse(OrchConfigSchema, data)

/** A value the rule refuses: its own, else the key's default (every rule refusing any value has one). */
function refusedSample(rule: (typeof UNAVAILABLE)[number]): unknown {
  return rule.values ? rule.values[0] : describeKeys().find((k) => k.path === rule.key)?.default
}

/** Data holding `value` at a docs path (a list item is `{name}`, a `<name>` is `x`). */
function dataAt(docsPath: string, value: unknown): Record<string, unknown> {
  const data: Record<string, unknown> = {}
  let at: Record<string, unknown> = data
  const parts = docsPath.split('.').map((part) => (part.startsWith('<') ? 'x' : part))
  parts.forEach((part, i) => {
    const key = part.replace(/\[\]$/, '')
    if (i === parts.length - 1) at[key] = value
    else if (part.endsWith('[]')) {
      const item: Record<string, unknown> = { name: 'item0' }
      at[key] = [item]
      at = item
    } else {
      const next: Record<string, unknown> = {}
      at[key] = next
      at = next
    }
  })
  return data
}

describe('every config key is read', () => {
  const dir = tempDir('orch-keys-read-')
  const fakes: FakeServer[] = []
  const consumed = new Set<string>()
  const bulk = new Set<string>()
  /** Rules a file setting their key was refused by, with their message; and the keys they cover. */
  const proven = new Set<(typeof UNAVAILABLE)[number]>()
  const refusable = new Set<string>()
  const byRefusal = new Set<string>()

  const record = (rec: Recording) => {
    for (const path of rec.reads) consumed.add(path)
    for (const path of rec.bulk) bulk.add(path)
  }

  beforeAll(async () => {
    configureLogging({ level: 'none' })
    fakes.push(await startFakeOllama({ models: ['m'] }), await startFakeOpenAI({ models: ['m'] }))
    const [ollama, openai] = fakes as [FakeServer, FakeServer]
    mkdirSync(join(dir.path, 'inputs', 'b1'), { recursive: true })
    const base = () => fullData({ ollama: ollama.url, openai: openai.url, dir: dir.path })

    // orch serve: engine, task store and runner, HTTP app, metrics sampler; a chat call and a body read.
    const serveRec = recorder()
    const serveConfig = serveRec.wrap(parse(base()))
    const server = await startServe({ config: serveConfig, home: join(dir.path, 'home'), version: '0.0.0-test', port: 0 })
    try {
      const auth = { authorization: 'Bearer a-token-of-twenty-chars', 'content-type': 'application/json' }
      const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], stream: false })
      const chat = await fetch(`${server.url}/api/chat`, { method: 'POST', headers: auth, body })
      expect(chat.status).toBe(200)
      await chat.text()
      // A performance sample or two (collection_interval_seconds: 0.02).
      await Bun.sleep(150)
    } finally {
      await server.stop()
    }
    record(serveRec)

    // The pool supervisor, with real worker processes: heartbeats, a recycle check, a crash.
    const poolRec = recorder()
    const poolConfig = poolRec.wrap(parse({ ...base(), pools: poolData(), crash_barrier: { max_restarts: 1, window_seconds: 60 } }))
    const engine = new Engine({ config: poolConfig, backends: [], cache: null, healthIntervalMs: 0 })
    const store = openStore(join(dir.path, 'pool-home'))
    const supervisor = new Supervisor({
      config: poolConfig,
      home: join(dir.path, 'pool-home'),
      store,
      scheduler: engine.scheduler,
      watchdogParent: null,
      control: false,
      timing: { probeInitialMs: 20, probeMaxMs: 100, restartInitialMs: 20, checkMs: 10 },
    })
    try {
      await supervisor.start()
      expect(supervisor.workers.map((w) => w.state).sort()).toEqual(['failed', 'healthy', 'healthy', 'healthy'])
      await Bun.sleep(150)
    } finally {
      await supervisor.stop()
      await engine.close()
      store.close()
    }
    record(poolRec)

    // The autoscaler of those pools: bounds, policy, one evaluation under machine load, in manual mode.
    const scaleRec = recorder()
    const scaleConfig = scaleRec.wrap(
      parse({
        ...base(),
        pools: poolData(),
        infrastructure_system: {
          resource_management: { auto_scaling_enabled: true },
          distributed_simulation: { orchestrator_mode: 'manual' },
        },
      }),
    )
    const scaler = new Autoscaler({
      config: scaleConfig,
      target: { poolFigures: () => ({ current: 2, ready: 2, inflight: 1 }), scaleTo: async () => undefined },
      scheduler: { waitingFor: () => ({ count: 9, oldestMs: 10 }), standby: () => () => undefined },
      machine: () => ({ cpuPercent: 99, memoryPercent: 99 }),
    })
    scaler.start()
    await scaler.evaluate()
    expect(scaler.intervalMs).toBeGreaterThan(0)
    scaler.stop()
    record(scaleRec)

    // orch doctor's gatherers: ports (serve and a pool's range), stale batch locks, Prometheus.
    const doctorRec = recorder()
    const doctorConfig = doctorRec.wrap(parse({ ...base(), pools: [{ name: 'p', pool_size: 2, port: 1 }] }))
    await gatherPorts(doctorConfig, join(dir.path, 'home'))
    gatherBatchLocks(doctorConfig, dir.path)
    // With grafana_prometheus.enabled, the Prometheus at its endpoint (nothing listens there).
    if (monitoringEnabled(doctorConfig)) expect((await gatherPrometheus(doctorConfig, 500)).reachable).toBe(false)
    record(doctorRec)

    // The Redis connection settings (what every process of a cluster connects with): a URL, else host and port.
    const redisRec = recorder()
    const cluster = { enabled: true, event_bus_type: 'redis', redis_password_env: 'KEYS_READ_REDIS_PASSWORD', redis_prefix: 'c1' }
    const redisData = (extra: Record<string, unknown>) => {
      const data = base() as { infrastructure_system: Record<string, unknown> }
      data.infrastructure_system.distributed_simulation = { ...cluster, ...extra }
      return data
    }
    redisSettings(redisRec.wrap(parse(redisData({ redis_url: 'redis://r:1' }))), {})
    redisSettings(redisRec.wrap(parse(redisData({ redis_host: 'r', redis_port: 2 }))), {})
    record(redisRec)

    // The memory cache (what `orch serve` opens with cache_backend: memory).
    const cacheRec = recorder()
    const data = base() as { infrastructure_system: { llm_orchestration: { caching: Record<string, unknown> } } }
    data.infrastructure_system.llm_orchestration.caching = { enabled: true, cache_backend: 'memory', max_entries: 10, max_bytes: 1000 }
    createCache(cacheRec.wrap(parse(data)).infrastructure_system.llm_orchestration.caching)?.close()
    record(cacheRec)

    // Logging: every category's logger takes its level from the config.
    const logRec = recorder()
    configureLogging(logRec.wrap(parse(base())).logging)
    for (const category of LOG_CATEGORIES) logger(category)
    configureLogging({ level: 'none' })
    record(logRec)

    // The refusal check: first, which rules refuse their key when a file sets it; then its reads of a full
    // config, as if every value were set by the user.
    const refusalRec = recorder()
    for (const [index, rule] of UNAVAILABLE.entries()) {
      const issues = validateConfigFile(writeJson(`refused-${index}.json`, dataAt(rule.key, refusedSample(rule))))
      if (issues.some((i) => docPathOf(i.path) === rule.key && i.message === rule.message)) {
        proven.add(rule)
        refusable.add(rule.key)
      }
    }
    unavailableIssues(refusalRec.wrap(parse({ ...base(), pools: poolData() })), () => true)
    for (const path of refusalRec.reads) if (refusable.has(path)) byRefusal.add(path)
  }, 30_000)

  afterAll(async () => {
    configureLogging({ level: 'info' })
    for (const fake of fakes) await fake.stop()
    dir.cleanup()
  })

  function writeJson(name: string, data: unknown): string {
    const file = join(dir.path, name)
    writeFileSync(file, JSON.stringify(data))
    return file
  }

  const docPathOf = (path: string) => docPath(parsePath(path) ?? [])

  /** Keys whose only effect is to allow another key's value, each proven by a file it is refused in. */
  function gateKeys(): Set<string> {
    const gates = new Set<string>()
    for (const [key, value] of Object.entries(GATES)) {
      const issues = validateConfigFile(writeJson(`gate-${gates.size}.json`, dataAt(key, value)))
      if (issues.some((i) => docPathOf(i.path) === key)) gates.add(key)
    }
    return gates
  }

  test('each leaf key is read by a consumer, or refused by a rule that demonstrably refuses it', () => {
    const gates = gateKeys()
    const unread = LEAVES.filter((key) => !consumed.has(key) && !byRefusal.has(key) && !STATIC_READS[key] && !gates.has(key))
    const detail = unread.map((key) => `${key}${bulk.has(key) ? ' (only read as part of a whole section: spread or Object.entries)' : ''}`)
    expect(detail).toEqual([])
  })

  test('every refusal rule refuses its key when a file sets it, with its message', () => {
    expect(UNAVAILABLE.filter((rule) => !proven.has(rule)).map((rule) => `${rule.key}: ${JSON.stringify(refusedSample(rule))}`)).toEqual([])
  })

  test('the keys checked statically are read in the code of their file', () => {
    for (const [key, file] of Object.entries(STATIC_READS)) {
      expect(LEAF_SET.has(key)).toBe(true)
      const leaf = key.split('.').at(-1) as string
      const code = codeOnly(readFileSync(join(ROOT, file), 'utf8'))
      expect(`${key}: ${new RegExp(`\\.\\s*${leaf}\\b`).test(code) ? 'read' : 'not read'} in ${file}`).toBe(`${key}: read in ${file}`)
    }
  })

  test('the consumers saw a real run (not an empty recording)', () => {
    for (const key of [
      'server.body_limit_bytes',
      'backend_timeouts.first_token_ms',
      'pools[].heartbeat.ping_interval_ms',
      'tasks.lease_ms',
    ])
      expect(`${key} ${consumed.has(key)}`).toBe(`${key} true`)
  })
})
