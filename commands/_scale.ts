/**
 * `orch scale status` and `orch scale set`: the autoscaler of a running orch serve, over its HTTP API
 * (GET /scale, POST /scale/{pool}; docs/scaling.md#autoscaling).
 */
import { formatAge } from '../src/core/age.ts'
import { UsageError } from '../src/core/errors.ts'
import type { PoolScaleStatus, ScaleStatus } from '../src/scale/autoscaler.ts'
import { defineOrchCommand, globalArgs, printJson, printText } from './_args.ts'
import { serveClient, urlArg } from './_client.ts'
import { formatTable } from './_table.ts'

const MODE_TEXT = {
  auto: 'auto: the autoscaler sizes the pools',
  manual: 'manual: no automatic decisions; orch scale set POOL N sizes a pool',
  off: 'off: pools keep pool_size (resource_management.auto_scaling_enabled: false)',
} as const

const status = defineOrchCommand({
  meta: {
    name: 'status',
    description: "Each pool's workers (current, ready, desired, min, max) and the last decisions with their reasons",
  },
  args: { ...globalArgs, ...urlArg, decisions: { type: 'string', valueHint: 'N', description: 'Decisions shown per pool (default 5)' } },
  examples: ['orch scale status', 'orch scale status --decisions 20', 'orch scale status --json | jq .pools[0].desired'],
  async run({ args }) {
    const shown = args.decisions === undefined ? 5 : Number(args.decisions)
    if (!Number.isInteger(shown) || shown < 0) throw new UsageError(`--decisions: expected a whole number, got "${args.decisions}"`)
    const answer = await serveClient(args).scaleStatus<ScaleStatus>()
    if (args.json) {
      printJson(answer)
      return 0
    }
    const lines = [`mode: ${MODE_TEXT[answer.mode]}${answer.interval_s ? `, every ${answer.interval_s} s` : ''}`]
    if (answer.pools.length === 0) lines.push('no pools (add one under pools: in orch.yaml)')
    else {
      lines.push(
        formatTable([
          ['POOL', 'CURRENT', 'READY', 'DESIRED', 'MIN', 'MAX', 'TARGET/WORKER'],
          ...answer.pools.map((p) => [
            p.pool,
            String(p.current),
            String(p.ready),
            String(p.desired),
            String(p.min),
            String(p.max),
            String(p.target_per_worker),
          ]),
        ]),
      )
      for (const p of answer.pools) {
        const recent = p.decisions.slice(-shown)
        if (recent.length === 0) continue
        lines.push('', `${p.pool}, last decisions:`)
        for (const d of recent) {
          const ago = formatAge((Date.now() - d.at) / 1000)
          lines.push(`  ${ago} ago  ${d.from} → ${d.to}${d.applied ? '' : ' (not applied)'}  ${d.reason}`)
        }
      }
    }
    printText(lines.join('\n'))
    return 0
  },
})

const set = defineOrchCommand({
  meta: { name: 'set', description: 'Size a pool by hand: N workers (orchestrator_mode: manual only)' },
  args: {
    ...globalArgs,
    ...urlArg,
    pool: { type: 'positional', required: true, valueHint: 'POOL', description: 'The pool (pools[].name)' },
    workers: { type: 'positional', required: true, valueHint: 'N', description: 'Workers, from 0 to its max_workers' },
  },
  examples: ['orch scale set gen 3', 'orch scale set gen 0   # stop every worker of the pool'],
  async run({ args }) {
    const n = Number(args.workers)
    if (!/^\d+$/.test(String(args.workers)) || !Number.isSafeInteger(n)) {
      throw new UsageError(`N: expected a whole number of workers, got "${args.workers}"`, {
        hint: 'orch scale set POOL N, e.g. orch scale set gen 2',
      })
    }
    const pool = await serveClient(args).scaleSet<PoolScaleStatus>(String(args.pool), n)
    if (args.json) printJson(pool)
    else printText(`pool ${pool.pool}: ${pool.current} worker(s), asked for ${n} (${pool.ready} ready; min ${pool.min}, max ${pool.max})`)
    return 0
  },
})

/** The subcommands of orch scale that talk to a running orch serve. */
export const scaleControl = { status, set }
