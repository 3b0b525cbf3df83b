/**
 * Every benchmark in scripts/bench/, each in its own process, one after the other; then one table of their
 * headline figures (benchmark, figure, value, baseline measured in the same run, ratio) and, last line, one
 * JSON object: each benchmark's own last-line JSON under its name, and the machine it ran on. A benchmark
 * that fails is marked in the table and makes the exit code 1; the others still run. cold-start.ts needs the
 * compiled binary: dist/orch is built first when it is missing or older than the sources.
 *
 *   bun scripts/bench/all.ts [--quick] [--compare DIR] [--only queue,proxy-chat]
 * --quick: short runs and a queue depth of 100k (about 3 minutes); the default is the full run (1M).
 * --compare DIR: another checkout of orch (a `git worktree` of an older commit) that proxy.ts and queue.ts
 * measure in the same rounds.
 */
import { existsSync, readdirSync, statSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { quick: { type: 'boolean', default: false }, compare: { type: 'string' }, only: { type: 'string' } },
})
const ROOT = resolve(import.meta.dir, '../..')
const QUICK = values.quick === true
const compare = values.compare ? ['--compare', resolve(values.compare)] : []
const startedAt = new Date().toISOString()

/** A row of the table: label, the figure's key, its baseline's key, the key of their ratio (else value / baseline). */
type Row = [label: string, key: string, baseline?: string, ratio?: string]
interface Bench {
  name: string
  file: string
  args: string[]
  quick: string[]
  rows: Row[]
  /** Why it cannot run here, if it cannot. */
  prepare?: () => string | undefined
}

const proxyRows: Row[] = [
  ['orch req/s (64 clients)', 'orch_per_s', 'direct_per_s', 'orch_vs_direct'],
  ['orch CPU per call (µs)', 'orch_cpu_us_per_call'],
  ['compare req/s (64 clients)', 'compare_per_s', 'direct_per_s', 'compare_vs_direct'],
]
const BENCHES: Bench[] = [
  {
    name: 'cold-start',
    file: 'cold-start.ts',
    args: [],
    quick: ['--runs', '30'],
    prepare: buildBinary,
    rows: [
      ['orch --version p50 (ms)', 'version_p50_ms', 'empty_bun_p50_ms', 'version_vs_empty_bun'],
      ['orch --help p50 (ms)', 'help_p50_ms', 'empty_bun_p50_ms', 'help_vs_empty_bun'],
      ['orch <unknown command> p50 (ms)', 'unknown_command_p50_ms', 'empty_bun_p50_ms'],
      ['orch tasks --help p50 (ms)', 'tasks_help_p50_ms', 'empty_bun_p50_ms'],
    ],
  },
  {
    name: 'cache',
    file: 'cache.ts',
    args: [],
    quick: ['--gets', '20000'],
    rows: [
      ['sqlite cache hit p99 (ms)', 'cache_hit_p99_ms', 'sqlite_baseline_p99_ms'],
      ['memory cache hit p99 (ms)', 'memory_hit_p99_ms'],
    ],
  },
  {
    name: 'engine',
    file: 'engine.ts',
    args: [],
    quick: ['--tasks', '1000'],
    rows: [
      ['task lifecycles/s', 'lifecycles_per_s', 'sqlite_baseline_per_s', 'lifecycle_ratio'],
      ['slot utilisation (ideal 1)', 'slot_utilisation'],
      ['embeddings/s, coalesced', 'embed_per_s_batched', 'embed_per_s_unbatched', 'embed_coalescing_gain'],
      ['cache hit via engine p99 (ms)', 'cache_hit_p99_ms', 'sqlite_select_p99_ms'],
    ],
  },
  {
    name: 'batch',
    file: 'batch.ts',
    args: [],
    quick: ['--iterations', '100', '--runs', '5'],
    rows: [
      ['16-metric score p50 (ms)', 'in_process_p50_ms', 'baseline_p50_ms', 'ratio_p50'],
      ['orch batch run p50 (ms)', 'cli_run_p50_ms', 'cli_version_p50_ms'],
    ],
  },
  {
    name: 'serve',
    file: 'serve.ts',
    args: [],
    quick: ['--seconds', '2', '--requests', '500'],
    rows: [
      ['submit req/s (64 clients, fetch)', 'submit_per_s', 'echo_per_s', 'submit_echo_ratio'],
      ['submit p99 (ms)', 'submit_p99_ms'],
      ['proxy overhead p50 (ms)', 'proxy_overhead_p50_ms'],
      ['proxy overhead p99 (ms)', 'proxy_overhead_p99_ms'],
    ],
  },
  {
    name: 'proxy-chat',
    file: 'proxy.ts',
    args: ['--target', 'chat', ...compare],
    quick: ['--seconds', '2', '--rounds', '2'],
    rows: proxyRows,
  },
  {
    name: 'proxy-submit',
    file: 'proxy.ts',
    args: ['--target', 'submit', ...compare],
    quick: ['--seconds', '2', '--rounds', '2'],
    rows: proxyRows,
  },
  {
    name: 'queue',
    file: 'queue.ts',
    args: [...compare],
    quick: ['--depth', '100000', '--seconds', '5', '--idle-seconds', '5'],
    rows: [
      ['fill tasks/s', 'fill_per_s'],
      ['GET /health p99 at depth (ms)', 'health_p99_ms_at_depth', 'health_p99_ms_empty', 'health_p99_ratio'],
      ['GET /stats p99 at depth (ms)', 'stats_p99_ms_at_depth', 'stats_p99_ms_empty', 'stats_p99_ratio'],
      ['submit p99 at depth (ms, c=1)', 'submit_p99_ms_at_depth', 'submit_p99_ms_empty', 'submit_p99_ratio'],
      ['submit c=64 last run (req/s)', 'submit_last_per_s', 'submit_first_per_s', 'submit_flatness'],
      ['idle CPU, 100 due tasks (ms/s)', 'idle_cpu_ms_per_s', 'idle_cpu_ms_per_s_empty', 'idle_cpu_ratio'],
      ['RSS at depth (MiB)', 'rss_mb_at_depth', 'rss_mb_empty', 'rss_ratio'],
      ['compare: stats p99 at depth (ms)', 'compare_stats_p99_ms_at_depth', 'compare_stats_p99_ms_empty', 'compare_stats_p99_ratio'],
      ['compare: submit p99 at depth (ms)', 'compare_submit_p99_ms_at_depth', 'compare_submit_p99_ms_empty', 'compare_submit_p99_ratio'],
      ['compare: idle CPU (ms/s)', 'compare_idle_cpu_ms_per_s', 'compare_idle_cpu_ms_per_s_empty', 'compare_idle_cpu_ratio'],
      ['compare: RSS at depth (MiB)', 'compare_rss_mb_at_depth', 'compare_rss_mb_empty', 'compare_rss_ratio'],
    ],
  },
  {
    name: 'model',
    file: 'model.ts',
    args: [],
    quick: ['--quick'],
    prepare: () => {
      try {
        Bun.resolveSync('node-llama-cpp', ROOT)
        return undefined
      } catch {
        return 'node-llama-cpp is not installed (npm install)'
      }
    },
    rows: [
      ['tokens/s through orch, sequential', 'orch_tok_s', 'direct_tok_s', 'orch_vs_direct'],
      ['time to first token p50 (ms)', 'orch_ttft_ms', 'direct_ttft_ms'],
      ['tokens/s, 4 clients, parallel 4 vs 1', 'parallel_4_tok_s', 'parallel_1_tok_s', 'parallel_gain'],
      ['peak_parallel, parallel-4 worker', 'peak_parallel_4'],
    ],
  },
  {
    // The figures in docs/performance.md are from `bun scripts/bench/redis.ts --tasks 20000`.
    name: 'redis',
    file: 'redis.ts',
    args: ['--tasks', '5000'],
    quick: ['--tasks', '2000'],
    prepare: () => (Bun.which('redis-server') ? undefined : 'redis-server is not installed (apt-get install redis-server)'),
    rows: [
      ['cluster submit tasks/s', 'orch_submitted_per_s', 'bullmq_added_per_s', 'orch_submit_vs_bullmq_add'],
      ['cluster done/s, 1 worker', 'orch_1w_completed_per_s', 'bullmq_completed_per_s', 'orch_1w_vs_bullmq'],
      ['cluster done/s, 2 workers', 'orch_2w_completed_per_s', 'bullmq_completed_per_s', 'orch_2w_vs_bullmq'],
    ],
  },
  {
    // The hour the memory goal speaks of is `bun scripts/bench/soak.ts` alone (default --minutes 60).
    name: 'soak',
    file: 'soak.ts',
    args: ['--minutes', '5', '--warmup-minutes', '2'],
    quick: ['--minutes', '1', '--warmup-minutes', '0.5', '--sample-seconds', '10'],
    rows: [
      ['RSS at the end (MiB)', 'rss_mb_last', 'rss_mb_warm', 'rss_last_vs_warm'],
      ['RSS slope after warm-up (MiB/h)', 'rss_slope_mb_per_hour'],
    ],
  },
]

/** Newest modification time of the files under `dir`, in ms. */
function newest(dir: string): number {
  let latest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs)
  }
  return latest
}

/** dist/orch, built when missing or older than the sources; the reason to skip cold-start.ts if the build fails. */
function buildBinary(): string | undefined {
  const binary = join(ROOT, 'dist/orch')
  const sources = Math.max(newest(join(ROOT, 'src')), newest(join(ROOT, 'commands')))
  if (existsSync(binary) && statSync(binary).mtimeMs >= sources) return undefined
  console.log(`${existsSync(binary) ? 'dist/orch is older than the sources' : 'dist/orch is missing'}: building it (npm run build)`)
  const r = Bun.spawnSync([process.execPath, join(ROOT, 'scripts/build.ts')], { cwd: ROOT, stdout: 'inherit', stderr: 'pipe' })
  if (r.exitCode === 0) return undefined
  const why = r.stderr.toString().trim().split('\n').at(-1) ?? ''
  return `npm run build failed (exit ${r.exitCode})${why ? `: ${why}` : ''}`
}

/** One benchmark as a child process: its output passes through; its last line is its JSON. */
async function runBench(bench: Bench): Promise<{ json?: Record<string, unknown>; failure?: string }> {
  const args = [...bench.args, ...(QUICK ? bench.quick : [])]
  console.log(`\n# ${bench.name}: bun scripts/bench/${bench.file} ${args.join(' ')}`)
  const child = Bun.spawn([process.execPath, '--no-env-file', join(import.meta.dir, bench.file), ...args], {
    cwd: ROOT,
    stdout: 'pipe',
    stderr: 'inherit',
    env: { ...process.env, NO_COLOR: '1' },
  })
  // A benchmark that hangs must not stop the others: end it (it cleans up on SIGTERM) past its allowance.
  const limitMs = (QUICK ? 5 : 30) * 60_000
  const timer = setTimeout(() => {
    child.kill('SIGTERM')
    setTimeout(() => child.kill('SIGKILL'), 10_000).unref()
  }, limitMs)
  let out = ''
  const decoder = new TextDecoder()
  for await (const chunk of child.stdout) {
    const text = decoder.decode(chunk, { stream: true })
    out += text
    process.stdout.write(text)
  }
  const code = await child.exited
  clearTimeout(timer)
  if (code !== 0) return { failure: child.signalCode ? `killed (${child.signalCode}) after ${limitMs / 60_000} min` : `exit ${code}` }
  const last = out.trim().split('\n').at(-1) ?? ''
  try {
    return { json: JSON.parse(last) as Record<string, unknown> }
  } catch {
    return { failure: 'its last line is not JSON' }
  }
}

function machine() {
  const git = (...args: string[]) => Bun.spawnSync(['git', ...args], { cwd: ROOT, stdout: 'pipe', stderr: 'ignore' })
  const commit = git('rev-parse', '--short', 'HEAD').stdout.toString().trim()
  const dirty = git('diff', '--quiet', 'HEAD', '--').exitCode === 1
  return {
    cpus: cpus().length,
    model: cpus()[0]?.model ?? 'unknown',
    mem_gb: Math.round(totalmem() / 2 ** 30),
    bun: Bun.version,
    date: startedAt,
    commit: `${commit}${dirty ? '+changes' : ''}`,
  }
}

const only = values.only?.split(',').map((s) => s.trim())
const unknown = only?.filter((name) => !BENCHES.some((b) => b.name === name)) ?? []
if (unknown.length > 0) {
  console.error(`--only: unknown benchmark ${unknown.join(', ')} (known: ${BENCHES.map((b) => b.name).join(', ')})`)
  process.exit(2)
}
const results: Record<string, unknown> = {}
const table: string[][] = []
let failed = false
const show = (v: unknown) => (v === undefined || v === null ? '' : typeof v === 'number' ? String(Number(v.toPrecision(4))) : String(v))
for (const bench of BENCHES.filter((b) => !only || only.includes(b.name))) {
  const skip = bench.prepare?.()
  if (skip) {
    console.log(`\n# ${bench.name}: skipped: ${skip}`)
    table.push([bench.name, `skipped: ${skip}`, '', '', ''])
    results[bench.name] = { skipped: skip }
    continue
  }
  const { json, failure } = await runBench(bench)
  if (!json) {
    failed = true
    table.push([bench.name, `FAILED: ${failure}`, '', '', ''])
    results[bench.name] = { failed: failure }
    continue
  }
  results[bench.name] = json
  for (const [label, key, baseline, ratioKey] of bench.rows) {
    const value = json[key]
    if (value === undefined) continue
    const base = baseline ? json[baseline] : undefined
    const ratio = ratioKey ? json[ratioKey] : typeof value === 'number' && typeof base === 'number' && base > 0 ? value / base : undefined
    table.push([bench.name, label, show(value), show(base), ratio === undefined ? '' : `×${show(ratio)}`])
  }
}

const widths = [14, 36, 12, 12, 10]
const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join(' ')
console.log(`\nbenchmarks${QUICK ? ' (--quick)' : ''}: each figure against its baseline, measured in the same run`)
console.log(line(['benchmark', 'figure', 'value', 'baseline', 'ratio']))
for (const row of table) console.log(line(row))
results.machine = machine()
console.log(JSON.stringify(results))
if (failed) process.exit(1)
