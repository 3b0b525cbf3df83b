/**
 * orch serve with a deep queue, against the same server on an empty queue, in the same run. Every server's
 * only backend is a closed port, so queued tasks stay queued (due, with nothing to run them on).
 *  - fill: `--depth` tasks queued into a fresh state directory through the checkout's own SqliteTaskQueue
 *    (servers/fill-queue.ts, submitMany in chunks, synchronous NORMAL).
 *  - latency, one client (c=1): GET /health, GET /stats, POST /queue/submit, each for `--seconds`, on the
 *    deep queue and on an empty one; figure: p50/p99 and the ratio depth / empty.
 *  - submit throughput over time: four consecutive `--seconds` runs of 64 clients posting /queue/submit to one
 *    server that starts empty; figure: last run / first run (flatness) and the worst p99.
 *  - idle CPU: a server holding 100 due tasks and no usable backend, vs an idle server with an empty queue;
 *    CPU milliseconds per second from /proc/<pid>/stat over `--idle-seconds`.
 *  - RSS (VmRSS): the server on the empty queue and on the deep one, settled, and after the latency runs
 *    (memory over an hour of traffic is soak.ts).
 * `--compare DIR` measures a second checkout of orch (a `git worktree` of an older commit, node_modules
 * linked) in the same run, interleaved with this one; its figures get a `compare_` prefix.
 * Load comes from wrk, or from scripts/bench/load.ts where wrk is missing (said in the output).
 *
 *   bun scripts/bench/queue.ts [--depth 1000000] [--seconds 10] [--idle-seconds 10] [--compare DIR]
 * Last line: one JSON object with every figure.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { type LoadResult, loadTest, loadTool } from './load.ts'
import { spawnServer, stopAll, stopServer } from './servers/spawn.ts'

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    depth: { type: 'string', default: '1000000' },
    seconds: { type: 'string', default: '10' },
    'idle-seconds': { type: 'string', default: '10' },
    compare: { type: 'string' },
  },
})
const DEPTH = Number(values.depth)
const SECONDS = Number(values.seconds)
const IDLE_SECONDS = Number(values['idle-seconds'])
for (const [flag, n] of Object.entries({ depth: DEPTH, seconds: SECONDS, 'idle-seconds': IDLE_SECONDS })) {
  if (!Number.isFinite(n) || n <= 0) {
    console.error(`--${flag}: expected a positive number, got "${values[flag as keyof typeof values]}"`)
    process.exit(2)
  }
}
const ROOT = resolve(import.meta.dir, '../..')
const compareRoot = values.compare ? resolve(values.compare) : undefined
if (compareRoot && !existsSync(join(compareRoot, 'commands/index.ts'))) {
  console.error(`--compare: ${compareRoot} is not a checkout of orch (no commands/index.ts)`)
  process.exit(2)
}
const SUBMIT_BODY = JSON.stringify({ type: 'generate', model: 'llama3.2', payload: { model: 'llama3.2', prompt: 'hello' } })
const TOOL = loadTool()
const work = mkdtempSync(join(tmpdir(), 'orch-bench-queue-'))

interface Side {
  name: 'orch' | 'compare'
  root: string
  figures: Record<string, number | number[]>
}
interface Server {
  url: string
  pid: number
  home: string
  startMs: number
}
const sides: Side[] = [{ name: 'orch', root: ROOT, figures: {} }]
if (compareRoot) sides.push({ name: 'compare', root: compareRoot, figures: {} })

const note = (text: string) => console.error(text)
const round = (n: number) => (Number.isFinite(n) ? Number(n.toPrecision(3)) : n)
const ratio = (a: number, b: number) => (b > 0 ? round(a / b) : Number.NaN)
const CLK_TCK = Number(Bun.spawnSync(['getconf', 'CLK_TCK']).stdout.toString().trim()) || 100

/** CPU milliseconds (user + system) a process has used so far. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
  return ((Number(fields[11]) + Number(fields[12])) / CLK_TCK) * 1000
}

/** Resident memory of a process in MiB (VmRSS). */
function rssMb(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]
  return round(Number(kb) / 1024)
}

/** A working directory with the bench's orch.yaml; the state directory is `<dir>/.orch`. */
function serverDir(side: Side, label: string): string {
  const cwd = join(work, `${side.name}-${label}`)
  mkdirSync(cwd, { recursive: true })
  // The bench queues past the default bounds; an older checkout compared against has no such keys.
  const bounded = readFileSync(join(side.root, 'src/config/schema.ts'), 'utf8').includes('max_queued_per_tenant')
  writeFileSync(
    join(cwd, 'orch.yaml'),
    [
      'backends:',
      '  - { name: closed, type: ollama, url: "http://127.0.0.1:9", concurrency: 256 }',
      bounded ? 'tasks: { synchronous: FULL, max_queued: 0, max_queued_per_tenant: 0 }' : 'tasks: { synchronous: FULL }',
      'runtime: { ollama: { concurrency: 256 } }',
      'infrastructure_system: { distributed_simulation: { agent_runner_concurrency: 256 }, llm_orchestration: { caching: { enabled: false } } }',
      'logging: { level: error }',
      '',
    ].join('\n'),
  )
  return cwd
}

/** Queue `depth` tasks into `<cwd>/.orch` with the side's own code, in a child process run in its checkout. */
async function fill(side: Side, cwd: string): Promise<void> {
  const child = Bun.spawn(
    [
      process.execPath,
      '--no-env-file',
      join(import.meta.dir, 'servers/fill-queue.ts'),
      side.root,
      join(cwd, '.orch'),
      String(DEPTH),
      '5000',
    ],
    { cwd: side.root, stdout: 'pipe', stderr: 'pipe', env: { ...process.env, NO_COLOR: '1' } },
  )
  const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited])
  if (code !== 0) throw new Error(`filling the ${side.name} queue failed (exit ${code}): ${err.trim()}`)
  const r = JSON.parse(out.trim().split('\n').at(-1) ?? '') as { per_s: number; seconds: number; db_mb: number }
  Object.assign(side.figures, { fill_per_s: r.per_s, fill_seconds: r.seconds, db_mb: r.db_mb })
  note(`${side.name}: filled ${DEPTH} tasks in ${r.seconds} s (${r.per_s}/s), state.db ${r.db_mb} MiB`)
}

/** `orch serve` of the side's checkout on `<cwd>/.orch`, once it answers /health. */
async function serve(side: Side, cwd: string): Promise<Server> {
  const started = performance.now()
  const home = join(cwd, '.orch')
  const args = [join(side.root, 'commands/index.ts'), 'serve', '--port', '0', '--json', '--home', home]
  const { url, pid } = await spawnServer(args, cwd)
  for (let i = 0; ; i++) {
    const ok = await fetch(`${url}/health`).then(
      (r) => r.ok,
      () => false,
    )
    if (ok) break
    if (i > 600) throw new Error(`${side.name} serve at ${url} does not answer /health`)
    await Bun.sleep(50)
  }
  return { url, pid, home, startMs: performance.now() - started }
}

function run(server: Server, path: string, clients: number, body?: string): Promise<LoadResult> {
  return loadTest({
    url: `${server.url}${path}`,
    clients,
    threads: clients > 1 ? 2 : 1,
    seconds: SECONDS,
    ...(body !== undefined ? { method: 'POST', body } : {}),
  })
}

let errors = 0
/** Latency at depth and on an empty queue, one client; each endpoint for every side before the next one. */
async function latency(servers: Map<Side, { empty: Server; deep: Server }>): Promise<void> {
  // /queue/submit last: it queues tasks, and the empty baseline of the others must stay empty.
  const endpoints = [
    { name: 'health', path: '/health' },
    { name: 'stats', path: '/stats' },
    { name: 'submit', path: '/queue/submit', body: SUBMIT_BODY },
  ]
  for (const endpoint of endpoints) {
    for (const side of sides) {
      const pair = servers.get(side)
      if (!pair) continue
      for (const [where, server] of [
        ['empty', pair.empty],
        ['at_depth', pair.deep],
      ] as const) {
        const r = await run(server, endpoint.path, 1, endpoint.body)
        errors += r.errors
        side.figures[`${endpoint.name}_p50_ms_${where}`] = round(r.p50_ms)
        side.figures[`${endpoint.name}_p99_ms_${where}`] = round(r.p99_ms)
        note(
          `${side.name} ${endpoint.path} ${where}: p50 ${round(r.p50_ms)} ms, p99 ${round(r.p99_ms)} ms${r.errors ? `, ${r.errors} errors` : ''}`,
        )
      }
      const f = side.figures
      for (const q of ['p50', 'p99']) {
        f[`${endpoint.name}_${q}_ratio`] = ratio(
          f[`${endpoint.name}_${q}_ms_at_depth`] as number,
          f[`${endpoint.name}_${q}_ms_empty`] as number,
        )
      }
    }
  }
}

/** Four consecutive runs of 64 clients posting /queue/submit to a server that starts empty. */
async function throughput(): Promise<void> {
  const servers = new Map<Side, Server>()
  for (const side of sides) servers.set(side, await serve(side, serverDir(side, 'throughput')))
  await Bun.sleep(2000)
  const runs = new Map<Side, LoadResult[]>(sides.map((side) => [side, []]))
  for (let i = 1; i <= 4; i++) {
    for (const side of sides) {
      const r = await run(servers.get(side) as Server, '/queue/submit', 64, SUBMIT_BODY)
      errors += r.errors
      runs.get(side)?.push(r)
      note(`${side.name} submit run ${i}: ${Math.round(r.per_s)} req/s, p99 ${round(r.p99_ms)} ms${r.errors ? `, ${r.errors} errors` : ''}`)
    }
  }
  for (const [side, rs] of runs) {
    const perS = rs.map((r) => Math.round(r.per_s))
    Object.assign(side.figures, {
      submit_runs_per_s: perS,
      submit_runs_p99_ms: rs.map((r) => round(r.p99_ms)),
      submit_flatness: ratio(perS.at(-1) as number, perS[0] as number),
      submit_max_p99_ms: round(Math.max(...rs.map((r) => r.p99_ms))),
    })
  }
  for (const server of servers.values()) await stopServer(server.pid)
}

/** CPU of a server holding 100 due tasks it cannot run, and of an idle one, over the same window. */
async function idleCpu(): Promise<void> {
  const servers: Array<{ side: Side; key: string; server: Server }> = []
  for (const side of sides) {
    for (const key of ['idle_cpu_ms_per_s', 'idle_cpu_ms_per_s_empty']) {
      servers.push({ side, key, server: await serve(side, serverDir(side, key)) })
    }
  }
  for (const { key, server } of servers) {
    if (key !== 'idle_cpu_ms_per_s') continue
    for (let i = 0; i < 100; i++) {
      const answer = await fetch(`${server.url}/queue/submit`, {
        method: 'POST',
        body: SUBMIT_BODY,
        headers: { 'content-type': 'application/json' },
      })
      await answer.arrayBuffer()
      if (answer.status !== 202) throw new Error(`${server.url}/queue/submit answered ${answer.status}`)
    }
  }
  await Bun.sleep(2000)
  const before = servers.map(({ server }) => cpuMs(server.pid))
  const started = performance.now()
  await Bun.sleep(IDLE_SECONDS * 1000)
  const elapsed = (performance.now() - started) / 1000
  servers.forEach(({ side, key, server }, i) => {
    side.figures[key] = round((cpuMs(server.pid) - (before[i] as number)) / elapsed)
  })
  for (const side of sides) {
    side.figures.idle_cpu_ratio = ratio(side.figures.idle_cpu_ms_per_s as number, side.figures.idle_cpu_ms_per_s_empty as number)
    note(
      `${side.name} idle CPU: ${side.figures.idle_cpu_ms_per_s} ms/s with 100 due tasks, ${side.figures.idle_cpu_ms_per_s_empty} ms/s empty`,
    )
  }
  for (const { server } of servers) await stopServer(server.pid)
}

async function depthAndMemory(): Promise<void> {
  const deepDirs = new Map<Side, string>()
  for (const side of sides) {
    const cwd = serverDir(side, 'deep')
    await fill(side, cwd)
    deepDirs.set(side, cwd)
  }
  const servers = new Map<Side, { empty: Server; deep: Server }>()
  for (const side of sides) {
    const empty = await serve(side, serverDir(side, 'empty'))
    const deep = await serve(side, deepDirs.get(side) as string)
    servers.set(side, { empty, deep })
    Object.assign(side.figures, { start_ms_empty: round(empty.startMs), start_ms_at_depth: round(deep.startMs) })
    const stats = (await (await fetch(`${deep.url}/stats`)).json()) as { tasks?: { queued?: unknown } }
    if (typeof stats.tasks?.queued === 'number' && stats.tasks.queued < DEPTH) {
      note(`${side.name}: warning: /stats says ${stats.tasks.queued} tasks queued, not ${DEPTH}`)
    }
  }
  await Bun.sleep(5000) // settle: start-up work, the first health probes and samples
  for (const [side, { empty, deep }] of servers) {
    Object.assign(side.figures, { rss_mb_empty: rssMb(empty.pid), rss_mb_at_depth: rssMb(deep.pid) })
    side.figures.rss_ratio = ratio(side.figures.rss_mb_at_depth as number, side.figures.rss_mb_empty as number)
  }
  await latency(servers)
  for (const [side, { empty, deep }] of servers) {
    side.figures.rss_mb_at_depth_after_load = rssMb(deep.pid)
    await stopServer(empty.pid)
  }
  for (const { deep } of servers.values()) await stopServer(deep.pid)
}

const ROWS: Array<[label: string, key: string, baseline?: string, ratioKey?: string]> = [
  ['fill (tasks/s, submitMany, NORMAL)', 'fill_per_s'],
  ['state.db at depth (MiB)', 'db_mb'],
  ['start until /health (ms)', 'start_ms_at_depth', 'start_ms_empty'],
  ['GET /health p99 (ms)', 'health_p99_ms_at_depth', 'health_p99_ms_empty', 'health_p99_ratio'],
  ['GET /stats p50 (ms)', 'stats_p50_ms_at_depth', 'stats_p50_ms_empty', 'stats_p50_ratio'],
  ['GET /stats p99 (ms)', 'stats_p99_ms_at_depth', 'stats_p99_ms_empty', 'stats_p99_ratio'],
  ['POST /queue/submit p50 (ms)', 'submit_p50_ms_at_depth', 'submit_p50_ms_empty', 'submit_p50_ratio'],
  ['POST /queue/submit p99 (ms)', 'submit_p99_ms_at_depth', 'submit_p99_ms_empty', 'submit_p99_ratio'],
  ['submit c=64, last run (req/s)', 'submit_last_per_s', 'submit_first_per_s', 'submit_flatness'],
  ['submit c=64, worst p99 (ms)', 'submit_max_p99_ms'],
  ['idle CPU, 100 due tasks (ms/s)', 'idle_cpu_ms_per_s', 'idle_cpu_ms_per_s_empty', 'idle_cpu_ratio'],
  ['RSS at depth (MiB)', 'rss_mb_at_depth', 'rss_mb_empty', 'rss_ratio'],
  ['RSS at depth after load (MiB)', 'rss_mb_at_depth_after_load', 'rss_mb_empty'],
]

function printTable(): void {
  const cell = (v: unknown) => String(v ?? '').padStart(11)
  const header = ['figure'.padEnd(34), ...sides.flatMap((s) => [cell(s.name), cell('baseline'), cell('ratio')])].join(' ')
  console.log(`queue depth ${DEPTH}: at depth vs an empty queue (baseline), ${SECONDS} s per run, load by ${TOOL}`)
  console.log(header)
  for (const [label, key, baseline, ratioKey] of ROWS) {
    if (sides.every((s) => s.figures[key] === undefined)) continue
    const cells = sides.flatMap((s) => {
      const f = s.figures
      const r = ratioKey ? f[ratioKey] : baseline ? ratio(f[key] as number, f[baseline] as number) : undefined
      return [cell(f[key]), cell(baseline ? f[baseline] : ''), cell(r === undefined ? '' : `×${r}`)]
    })
    console.log([label.padEnd(34), ...cells].join(' '))
  }
}

async function cleanUp(): Promise<void> {
  await stopAll()
  rmSync(work, { recursive: true, force: true })
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    cleanUp().finally(() => process.exit(130))
  })
}

let failed = false
try {
  if (TOOL !== 'wrk') note('wrk is not installed: load comes from scripts/bench/load.ts (fetch loops in a child process)')
  await depthAndMemory()
  await throughput()
  await idleCpu()
  for (const side of sides) {
    const runs = side.figures.submit_runs_per_s as number[]
    Object.assign(side.figures, { submit_first_per_s: runs[0] as number, submit_last_per_s: runs.at(-1) as number })
  }
  printTable()
} catch (error) {
  failed = true
  console.error(`queue.ts: ${(error as Error).message}`)
} finally {
  await cleanUp()
}
const summary: Record<string, unknown> = { depth: DEPTH, seconds: SECONDS, load_tool: TOOL, errors }
for (const side of sides) {
  for (const [key, value] of Object.entries(side.figures)) summary[side.name === 'orch' ? key : `compare_${key}`] = value
}
console.log(JSON.stringify(summary))
if (failed) process.exit(1)
