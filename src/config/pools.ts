/**
 * The `pools` section and the checks that span its items (unique names, dependencies that exist and do
 * not loop, a command for command-profile pools).
 */
import * as v from 'valibot'
import { didYouMean } from '../core/errors.ts'
import {
  bool,
  countOrInfinity,
  duration,
  envMap,
  int,
  intList,
  name,
  nonNegativeInt,
  num,
  oneOf,
  port,
  section,
  str,
  stringList,
} from './fields.ts'
import { asRecord, duplicateNames, type ItemProblem, itemCheck } from './items.ts'

const healthPath = v.pipe(
  v.string('expected a path starting with "/"'),
  v.startsWith('/', 'expected a path starting with "/"'),
  v.description('Path probed for health'),
  v.metadata({ kind: 'string' as const, type: 'URL path', defaultText: '"/health" for command, "/api/tags" for ollama' }),
)

const heartbeatOverride = section('Per-pool override of the global heartbeat; unset keys follow heartbeat', {
  enabled: v.optional(bool('Override of heartbeat.enabled')),
  ping_interval_ms: v.optional(int('Override of heartbeat.ping_interval_ms')),
  timeout_ms: v.optional(int('Override of heartbeat.timeout_ms')),
  max_missed_heartbeats: v.optional(int('Override of heartbeat.max_missed_heartbeats')),
  initial_delay_ms: v.optional(nonNegativeInt('Override of heartbeat.initial_delay_ms')),
  dependent: v.optional(bool('Override of heartbeat.dependent. Not available in this version: false')),
})

/** `auto`, or a non-negative integer: node-llama-cpp's own choice, or exactly this many. */
function autoOrInt(description: string, min: number) {
  const msg = `expected "auto" or an integer >= ${min}`
  return v.pipe(
    v.union([v.literal('auto', msg), v.pipe(v.number(msg), v.integer(msg), v.minValue(min, msg))], msg),
    v.description(description),
    v.metadata({ kind: 'int' as const, type: `"auto" or an integer >= ${min}` }),
  )
}

const llamacppSettings = section('How each llamacpp worker (orch model-worker) runs its model; only for profile llamacpp', {
  gpu_layers: v.optional(autoOrInt('Model layers offloaded to the GPU: auto (as many as fit), 0 (CPU only) or a count', 0), 'auto'),
  threads: v.optional(nonNegativeInt("CPU threads for generation; 0: the machine's math cores. On a 2-core machine use 1"), 0),
  context_size: v.optional(
    autoOrInt(
      "Tokens of context of each request (each of the parallel sequences has its own): auto (the model's own, as memory allows) or a count",
      16,
    ),
    'auto',
  ),
  parallel: v.optional(int('Requests one worker generates for at once (sequences of one context, batched together)'), 1),
  node_llama_cpp_path: v.optional(
    str("Directory node-llama-cpp is installed in (DIR/node_modules/node-llama-cpp); unset: beside the orch binary, then orch's own", {
      example: '/opt/orch',
    }),
  ),
})

export type LlamacppSettings = v.InferOutput<typeof llamacppSettings>

const LLAMACPP_DEFAULTS: LlamacppSettings = { gpu_layers: 'auto', threads: 0, context_size: 'auto', parallel: 1 }

/** The heartbeat keys a worker runs by (`dependent` is always true: see its description). */
export interface HeartbeatSettings {
  enabled: boolean
  ping_interval_ms: number
  timeout_ms: number
  max_missed_heartbeats: number
  initial_delay_ms: number
}

/** A pool's heartbeat: each key its own `heartbeat` sets, the global `heartbeat` for the rest (read key by key). */
export function poolHeartbeat(global: HeartbeatSettings, own: Partial<HeartbeatSettings> | undefined): HeartbeatSettings {
  return {
    enabled: own?.enabled ?? global.enabled,
    ping_interval_ms: own?.ping_interval_ms ?? global.ping_interval_ms,
    timeout_ms: own?.timeout_ms ?? global.timeout_ms,
    max_missed_heartbeats: own?.max_missed_heartbeats ?? global.max_missed_heartbeats,
    initial_delay_ms: own?.initial_delay_ms ?? global.initial_delay_ms,
  }
}

const poolEntry = v.pipe(
  v.strictObject(
    {
      name: name('Unique pool name (used in log paths and metric labels)'),
      profile: v.optional(
        oneOf(
          ['ollama', 'command', 'llamacpp'],
          'How a worker starts: ollama (ollama serve), command (any server command) or llamacpp (orch model-worker on the GGUF file in model)',
        ),
        'ollama',
      ),
      pool_size: v.optional(int('Workers in this pool (with autoscaling: the start, within min_workers..max_workers)'), 1),
      min_workers: v.optional(
        nonNegativeInt('Autoscaling: fewest workers (0: none while idle); default resource_management.min_agent_runners'),
      ),
      max_workers: v.optional(int('Autoscaling: most workers; default resource_management.max_agent_runners')),
      target_per_worker: v.optional(
        num('Autoscaling: requests waiting or in flight one worker should carry; default its concurrency', { min: 0, exclusiveMin: true }),
      ),
      scale_down_idle: v.optional(duration('Autoscaling: with no load for this long the pool goes down to min_workers'), '5m'),
      env: v.optional(envMap('Environment variables for the workers'), {}),
      startup_batch_size: v.optional(int('Workers started per batch when the pool starts'), 8),
      startup_batch_delay_ms: v.optional(nonNegativeInt('Milliseconds between startup batches'), 750),
      worker_ttl: v.optional(duration('Recycle (drain, restart) a worker after this long'), 'infinity'),
      worker_max_requests: v.optional(countOrInfinity('Recycle a worker after this many requests'), 'infinity'),
      heartbeat: v.optional(heartbeatOverride),
      models: v.optional(
        stringList('Models this pool serves (llamacpp: the one name clients use; default the file name of model, less .gguf)', {
          example: ['llama3.2'],
        }),
        [],
      ),
      model: v.optional(
        str('GGUF model file the workers load (a path; relative to the directory orch starts in); required when profile is llamacpp', {
          example: 'models/llama-3.2-1b-q4_k_m.gguf',
        }),
      ),
      llamacpp: v.optional(llamacppSettings),
      gpus: v.optional(intList('GPU indexes; worker i gets gpus[i mod n] as CUDA_VISIBLE_DEVICES', { example: [0] }), []),
      depends_on: v.optional(stringList('Pools that must be healthy before this one starts'), []),
      command: v.optional(
        stringList('Server command (argv) with {port}, {gpu}, {model} placeholders; required when profile is command', {
          example: ['llama-server', '--port', '{port}', '-m', '{model}'],
        }),
      ),
      health_path: v.optional(healthPath),
      api: v.optional(
        oneOf(['ollama', 'openai'], 'API the workers speak', { defaultText: 'ollama for profile ollama, openai for profile command' }),
      ),
      port: v.optional(port("First port for this pool's workers (the next free port is taken if busy)", { example: 11500 })),
    },
    'expected a mapping of pool keys to values',
  ),
  v.transform((pool) => ({
    ...pool,
    models: pool.profile === 'llamacpp' && pool.models.length === 0 && pool.model ? [ggufName(pool.model)] : pool.models,
    llamacpp: pool.profile === 'llamacpp' ? { ...LLAMACPP_DEFAULTS, ...pool.llamacpp } : pool.llamacpp,
    health_path: pool.health_path ?? (pool.profile === 'ollama' ? '/api/tags' : '/health'),
    api: pool.api ?? (pool.profile === 'command' ? ('openai' as const) : ('ollama' as const)),
  })),
)

/** The model name a GGUF file is served under when the pool names none: its file name, less `.gguf`. */
export function ggufName(path: string): string {
  return (path.split(/[\\/]/).pop() ?? path).replace(/\.gguf$/i, '')
}

const asStrings = (value: unknown): string[] => (Array.isArray(value) ? value.filter((x): x is string => typeof x === 'string') : [])

/** The first dependency cycle reachable from `start`, as a list of names ending where it began. */
function findCycle(start: string, deps: Map<string, string[]>): string[] | undefined {
  const stack: string[] = []
  const done = new Set<string>()
  const visit = (node: string): string[] | undefined => {
    const at = stack.indexOf(node)
    if (at >= 0) return [...stack.slice(at), node]
    if (done.has(node)) return undefined
    stack.push(node)
    for (const next of deps.get(node) ?? []) {
      const cycle = visit(next)
      if (cycle) return cycle
    }
    stack.pop()
    done.add(node)
    return undefined
  }
  return visit(start)
}

function dependencyProblems(pools: Record<string, unknown>[]): ItemProblem[] {
  const names = pools.map((p) => p.name).filter((n): n is string => typeof n === 'string')
  const deps = new Map(pools.map((p) => [String(p.name), asStrings(p.depends_on)]))
  const problems: ItemProblem[] = []
  const reported = new Set<string>()
  pools.forEach((pool, index) => {
    for (const dep of asStrings(pool.depends_on)) {
      if (dep === pool.name) problems.push({ index, key: 'depends_on', message: 'a pool cannot depend on itself' })
      else if (!names.includes(dep)) {
        const guess = didYouMean(dep, names)
        problems.push({ index, key: 'depends_on', message: `unknown pool "${dep}"${guess ? `; did you mean "${guess}"?` : ''}` })
      }
    }
    if (typeof pool.name !== 'string' || reported.has(pool.name)) return
    const cycle = findCycle(pool.name, new Map([...deps].map(([k, list]) => [k, list.filter((d) => d !== k && names.includes(d))])))
    if (cycle?.[0] === pool.name) {
      for (const member of cycle) reported.add(member)
      problems.push({ index, key: 'depends_on', message: `dependency cycle: ${cycle.join(' -> ')}` })
    }
  })
  return problems
}

/** Checks across pools. Works on partly invalid input, so they are reported with every other problem. */
export function checkPools(items: unknown[]): ItemProblem[] {
  const pools = items.map(asRecord)
  const problems = duplicateNames(items, 'pool')
  pools.forEach((pool, index) => {
    const profile = pool.profile ?? 'ollama'
    if (profile === 'llamacpp') {
      if (pool.model === undefined) problems.push({ index, key: 'model', message: 'required when profile is "llamacpp" (a .gguf file)' })
      if (pool.command !== undefined)
        problems.push({ index, key: 'command', message: 'not used when profile is "llamacpp": its workers run orch model-worker' })
      if (Array.isArray(pool.models) && pool.models.length > 1)
        problems.push({ index, key: 'models', message: 'a llamacpp pool serves one model: give one name' })
      if (pool.api === 'openai') problems.push({ index, key: 'api', message: 'llamacpp workers speak the Ollama API: use "ollama"' })
      return
    }
    for (const key of ['model', 'llamacpp'] as const)
      if (pool[key] !== undefined) problems.push({ index, key, message: 'only for profile "llamacpp"' })
    if (profile !== 'command') return
    if (pool.command === undefined) problems.push({ index, key: 'command', message: 'required when profile is "command"' })
    else if (Array.isArray(pool.command) && pool.command.length === 0)
      problems.push({ index, key: 'command', message: 'must not be empty when profile is "command"' })
  })
  return [...problems, ...dependencyProblems(pools)]
}

export function poolsSchema() {
  return v.pipe(
    v.array(poolEntry, 'expected a list of pools'),
    itemCheck(checkPools),
    v.description('Worker pools orch supervises (orch pool, orch serve)'),
    v.metadata({ kind: 'list' as const, type: 'list of pools' }),
  )
}
