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
        oneOf(['ollama', 'command'], 'How a worker starts: ollama (ollama serve) or command (any server command)'),
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
      models: v.optional(stringList('Models this pool serves', { example: ['llama3.2'] }), []),
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
    health_path: pool.health_path ?? (pool.profile === 'command' ? '/health' : '/api/tags'),
    api: pool.api ?? (pool.profile === 'command' ? ('openai' as const) : ('ollama' as const)),
  })),
)

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
    if ((pool.profile ?? 'ollama') !== 'command') return
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
