/**
 * orch's cluster mode (the task queue on Redis, docs/scaling.md) against bare BullMQ, in the same run on the
 * same fresh redis-server (its own, on a free loopback port; no persistence, or AOF with appendfsync
 * everysec under `--aof`). Every phase gets a fresh key prefix (and BullMQ queue name), a fresh Ollama test
 * double in its own process, and a FLUSHALL before it starts:
 *  - bullmq-noop: `Queue.addBulk` of `--tasks` jobs in chunks of `--chunk`, from this process; one `Worker`
 *    process with concurrency `--concurrency` and a processor that does nothing: BullMQ's own ceiling.
 *  - bullmq: the same, the processor doing what an orch chat task does: a `/api/chat` call with
 *    `stream: false` to the test double, its answer awaited and returned (stored as the job's result).
 *  - bullmq-2w: the same with two Worker processes.
 *  - orch-1w: one `orch serve --no-tasks` and one `orch worker` (agent_runner_concurrency and the
 *    backend's concurrency both `--concurrency`), all processes of their own; the same tasks are posted to
 *    `POST /queue/submit` in arrays of `--chunk`.
 *  - orch-2w: the same with two `orch worker` processes.
 * Figures of each phase: submitted (added) per second over the submission alone; completed per second from
 * the first submission until every task is finished (the queue's counts polled every 100 ms: BullMQ's job
 * counts, orch's GET /stats); Redis commands per task and Lua script calls per task (INFO stats and
 * commandstats, reset as the phase starts; commands run by a script count too); CPU per task of each process
 * (/proc, Redis's own INFO cpu). Then the ratios of orch to BullMQ. The goal, orch at 0.5× bare BullMQ or
 * better, is printed with whether it is met; it never fails the run. A phase whose tasks fail, whose worker
 * exits, or that finishes no task for `--stall-seconds` stops the run with a message saying which.
 *
 *   bun scripts/bench/redis.ts [--tasks 20000] [--concurrency 64] [--chunk 500] [--aof] [--stall-seconds 60]
 * Last line: one JSON object with every figure. Every process and temp directory is removed at the end, also
 * on error and on Ctrl-C.
 * (`--bullmq-worker SPEC` is this file's own child mode: one BullMQ Worker process of a phase.)
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { Queue, Worker } from 'bullmq'
import type { Subprocess } from 'bun'
import { Redis } from 'ioredis'
import { stringify } from 'yaml'
import { type RedisServer, startRedis } from '../../test/helpers/redis-server.ts'
import { stopOnSignals } from './servers/spawn.ts'

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    tasks: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '64' },
    chunk: { type: 'string', default: '500' },
    aof: { type: 'boolean', default: false },
    'stall-seconds': { type: 'string', default: '60' },
    'bullmq-worker': { type: 'string' },
  },
})

const ROOT = resolve(import.meta.dir, '../..')
const MODEL = 'llama3.2'
const POLL_MS = 100

interface WorkerSpec {
  port: number
  queue: string
  concurrency: number
  /** The test double's URL; unset: the processor does nothing. */
  backend?: string
}

/** The BullMQ side's Worker, in a process of its own as an orch worker is: prints {ready, pid} once it listens. */
async function bullmqWorker(spec: WorkerSpec): Promise<void> {
  const processor = spec.backend
    ? async (job: { data: { payload: unknown } }) => {
        const res = await fetch(`${spec.backend}/api/chat`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(job.data.payload),
        })
        if (!res.ok) throw new Error(`backend answered ${res.status}: ${await res.text()}`)
        return await res.json()
      }
    : async () => undefined
  const worker = new Worker(spec.queue, processor, {
    connection: { host: '127.0.0.1', port: spec.port, maxRetriesPerRequest: null },
    concurrency: spec.concurrency,
  })
  worker.on('error', (error) => console.error(`bullmq worker: ${error.message}`))
  await worker.waitUntilReady()
  console.log(JSON.stringify({ ready: true, pid: process.pid }))
  await new Promise<void>((done) => {
    const stop = () => void worker.close().then(done, done)
    process.once('SIGTERM', stop)
    process.once('SIGINT', stop)
  })
  process.exit(0)
}

if (values['bullmq-worker'] !== undefined) await bullmqWorker(JSON.parse(values['bullmq-worker']) as WorkerSpec)

// ---------------------------------------------------------------------------------------------------------

function positive(flag: 'tasks' | 'concurrency' | 'chunk' | 'stall-seconds'): number {
  const n = Number(values[flag])
  if (!Number.isInteger(n) || n <= 0) {
    console.error(`--${flag}: expected a positive integer, got "${values[flag]}"`)
    process.exit(2)
  }
  return n
}
const N = positive('tasks')
const C = positive('concurrency')
const CHUNK = positive('chunk')
const STALL_MS = positive('stall-seconds') * 1000
if (CHUNK > 10_000) {
  console.error(`--chunk: POST /queue/submit takes at most 10000 tasks at once, got ${CHUNK}`)
  process.exit(2)
}

const note = (text: string) => console.error(text)
const round = (n: number) => (Number.isFinite(n) ? Number(n.toPrecision(3)) : n)
const ratio = (a: number, b: number) => (b > 0 ? round(a / b) : Number.NaN)
const CLK_TCK = Number(Bun.spawnSync(['getconf', 'CLK_TCK']).stdout.toString().trim()) || 100

/** The task of index `i`, as orch takes it; BullMQ's job carries the same payload. Distinct prompts. */
const chatTask = (i: number) => ({
  type: 'chat',
  model: MODEL,
  payload: { model: MODEL, messages: [{ role: 'user', content: `task ${i} of the redis bench` }], stream: false },
})

// Processes and directories, all removed by `cleanup` -----------------------------------------------------

interface Child {
  label: string
  proc: Subprocess<'ignore', 'pipe', 'pipe'>
  /** The last few KiB of what it printed, for failure messages. */
  output(): string
}
const children = new Set<Child>()
const work = mkdtempSync(join(tmpdir(), 'orch-bench-redis-'))
let redis: RedisServer | undefined
let admin: Redis | undefined

/** Without ORCH_* variables of the caller's shell, so the config files alone decide. */
function childEnv(): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [key, value] of Object.entries(process.env)) if (value !== undefined && !key.startsWith('ORCH_')) env[key] = value
  return { ...env, NO_COLOR: '1' }
}

/** A child process that prints one JSON object once ready; resolves with it, or fails with its output. */
async function spawnChild(label: string, argv: string[], cwd: string): Promise<{ child: Child; ready: Record<string, unknown> }> {
  const proc = Bun.spawn([process.execPath, '--no-env-file', ...argv], {
    cwd,
    env: childEnv(),
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  })
  let tail = ''
  let stdout = ''
  let ready: Record<string, unknown> | undefined
  const child: Child = { label, proc, output: () => tail.trim() }
  children.add(child)
  const drain = async (stream: ReadableStream<Uint8Array>, isStdout: boolean) => {
    const decoder = new TextDecoder()
    for await (const chunk of stream) {
      const text = decoder.decode(chunk, { stream: true })
      tail = (tail + text).slice(-4000)
      if (isStdout && ready === undefined) {
        stdout += text
        try {
          ready = JSON.parse(stdout) as Record<string, unknown>
        } catch {
          // not all of it yet
        }
      }
    }
  }
  void drain(proc.stdout, true)
  void drain(proc.stderr, false)
  const deadline = Date.now() + 30_000
  while (ready === undefined) {
    if (proc.exitCode !== null) throw new Error(`${label} exited (${proc.exitCode}) before it was ready:\n${child.output()}`)
    if (Date.now() > deadline) throw new Error(`${label} was not ready within 30 s:\n${child.output()}`)
    await Bun.sleep(20)
  }
  return { child, ready }
}

/** SIGTERM, then SIGKILL if it has not exited within 5 s. */
async function stopChild(child: Child): Promise<void> {
  children.delete(child)
  if (child.proc.exitCode !== null || child.proc.signalCode !== null) return
  child.proc.kill('SIGTERM')
  const killer = setTimeout(() => child.proc.kill('SIGKILL'), 5000)
  await child.proc.exited
  clearTimeout(killer)
}

let cleaned = false
/** Set on SIGINT/SIGTERM: what fails after it is the stopping, not the bench. */
let interrupted = false
async function cleanup(): Promise<void> {
  if (cleaned) return
  cleaned = true
  await Promise.all([...children].map(stopChild))
  admin?.disconnect()
  await redis?.stop().catch(() => undefined)
  rmSync(work, { recursive: true, force: true })
}
stopOnSignals(cleanup, (signal) => {
  interrupted = true
  note(`${signal}: stopping every process of the bench`)
})

// Measuring ------------------------------------------------------------------------------------------------

/** CPU milliseconds (user + system) a process has used so far. */
function cpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
    return ((Number(fields[11]) + Number(fields[12])) / CLK_TCK) * 1000
  } catch {
    return Number.NaN
  }
}

/** `field:value` lines of an INFO section, as numbers where they are. */
async function info(section: string): Promise<Map<string, string>> {
  const text = (await (admin as Redis).info(section)) as string
  const out = new Map<string, string>()
  for (const line of text.split('\r\n')) {
    const at = line.indexOf(':')
    if (at > 0) out.set(line.slice(0, at), line.slice(at + 1))
  }
  return out
}

async function redisCpuMs(): Promise<number> {
  const cpu = await info('cpu')
  return (Number(cpu.get('used_cpu_user')) + Number(cpu.get('used_cpu_sys'))) * 1000
}

/** Calls per command since the last CONFIG RESETSTAT. */
async function commandCalls(): Promise<Map<string, number>> {
  const out = new Map<string, number>()
  for (const [key, value] of await info('commandstats')) {
    const calls = /calls=(\d+)/.exec(value)?.[1]
    if (key.startsWith('cmdstat_') && calls) out.set(key.slice('cmdstat_'.length), Number(calls))
  }
  return out
}

// Phases ---------------------------------------------------------------------------------------------------

type Side = 'bullmq' | 'orch'
interface PhaseSpec {
  key: string
  label: string
  side: Side
  workers: number
  noop?: boolean
}
interface Counts {
  done: number
  failed: number
  /** Beside done and failed (queued, running), for messages. */
  detail: string
}
/** What a phase runs: its processes started, how to submit a chunk, how to read its counts. */
interface Running {
  submit(tasks: Array<ReturnType<typeof chatTask>>): Promise<void>
  counts(): Promise<Counts>
  /** One failed task's error, for the message. */
  firstFailure(): Promise<string>
  /** Processes whose CPU counts, by role. */
  pids: Record<string, number[]>
  close(): Promise<void>
}
interface PhaseResult {
  submitted_per_s: number
  submit_s: number
  completed_per_s: number
  total_s: number
  redis_cmds_per_task: number
  redis_scripts_per_task: number
  top_commands: string
  cpu_us_per_task: Record<string, number>
}

const SCRIPT_COMMANDS = new Set(['evalsha', 'eval', 'evalsha_ro', 'eval_ro', 'fcall', 'fcall_ro'])

async function startFake(spec: PhaseSpec): Promise<{ child: Child; url: string }> {
  const { child, ready } = await spawnChild(`${spec.label}: Ollama test double`, [join(import.meta.dir, 'servers/fake-ollama.ts')], ROOT)
  return { child, url: String(ready.url) }
}

async function startBullmq(spec: PhaseSpec, fakeUrl: string | undefined, port: number): Promise<Running> {
  const name = `bench-${spec.key}-${Date.now()}`
  const workerSpec: WorkerSpec = { port, queue: name, concurrency: C, ...(fakeUrl ? { backend: fakeUrl } : {}) }
  const workers: Child[] = []
  for (let i = 0; i < spec.workers; i++) {
    const argv = [import.meta.path, '--bullmq-worker', JSON.stringify(workerSpec)]
    workers.push((await spawnChild(`${spec.label}: BullMQ worker ${i + 1}`, argv, work)).child)
  }
  const queue = new Queue(name, { connection: { host: '127.0.0.1', port, maxRetriesPerRequest: null } })
  queue.on('error', (error) => {
    if (!interrupted) note(`${spec.label}: BullMQ queue: ${error.message}`)
  })
  await queue.waitUntilReady()
  return {
    async submit(tasks) {
      await queue.addBulk(tasks.map((t) => ({ name: t.type, data: { payload: t.payload } })))
    },
    async counts() {
      const c = await queue.getJobCounts('completed', 'failed', 'waiting', 'active', 'delayed')
      return {
        done: c.completed ?? 0,
        failed: c.failed ?? 0,
        detail: `waiting ${c.waiting}, active ${c.active}, delayed ${c.delayed}`,
      }
    },
    async firstFailure() {
      const [job] = await queue.getFailed(0, 0)
      return job?.failedReason ?? 'unknown'
    },
    pids: { workers: workers.map((w) => w.proc.pid) },
    async close() {
      await Promise.all(workers.map(stopChild))
      await queue.close()
    },
  }
}

/** One orch process's config file and state directory; returns [config file, home]. */
function orchFiles(name: string, prefix: string, redisUrl: string, fakeUrl: string): [string, string] {
  const dir = join(work, name)
  const home = join(dir, 'home')
  mkdirSync(home, { recursive: true })
  const config = {
    backends: [{ name: 'fake', type: 'ollama', url: fakeUrl, concurrency: C }],
    tasks: { max_queued: 0, max_queued_per_tenant: 0 },
    logging: { level: 'warning' },
    infrastructure_system: {
      distributed_simulation: {
        enabled: true,
        event_bus_type: 'redis',
        redis_url: redisUrl,
        redis_prefix: prefix,
        agent_runner_concurrency: C,
      },
      // Every task pays for its model call, as every BullMQ job does.
      llm_orchestration: { caching: { enabled: false } },
      performance_monitoring: { export_path: join(dir, 'performance_logs') },
    },
  }
  const file = join(dir, 'orch.yaml')
  writeFileSync(file, stringify(config))
  return [file, home]
}

async function startOrch(spec: PhaseSpec, fakeUrl: string, redisUrl: string): Promise<Running> {
  const prefix = `bench-${spec.key}-${Date.now()}`
  const cli = join(ROOT, 'commands/index.ts')
  const [serveFile, serveHome] = orchFiles(`${spec.key}-serve`, prefix, redisUrl, fakeUrl)
  const serveArgs = [cli, 'serve', '--no-tasks', '--port', '0', '--json', '--config', serveFile, '--home', serveHome]
  const { child: serve, ready } = await spawnChild(`${spec.label}: orch serve`, serveArgs, join(work, `${spec.key}-serve`))
  const url = String(ready.url)
  const workers: Child[] = []
  for (let i = 0; i < spec.workers; i++) {
    const [file, home] = orchFiles(`${spec.key}-worker${i + 1}`, prefix, redisUrl, fakeUrl)
    const argv = [cli, 'worker', '--json', '--config', file, '--home', home]
    workers.push((await spawnChild(`${spec.label}: orch worker ${i + 1}`, argv, join(work, `${spec.key}-worker${i + 1}`))).child)
  }
  const get = async (path: string) => {
    const res = await fetch(`${url}${path}`)
    if (!res.ok) throw new Error(`${spec.label}: GET ${path} answered ${res.status}: ${await res.text()}`)
    return (await res.json()) as Record<string, any>
  }
  return {
    async submit(tasks) {
      const res = await fetch(`${url}/queue/submit`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(tasks),
      })
      const text = await res.text()
      if (res.status !== 202) throw new Error(`${spec.label}: POST /queue/submit answered ${res.status}: ${text.slice(0, 500)}`)
      const accepted = (JSON.parse(text) as { tasks?: unknown[] }).tasks?.length
      if (accepted !== tasks.length) throw new Error(`${spec.label}: POST /queue/submit of ${tasks.length} tasks accepted ${accepted}`)
    },
    async counts() {
      const t = (await get('/stats')).tasks as Record<string, number>
      return {
        done: t.done ?? 0,
        failed: (t.failed ?? 0) + (t.cancelled ?? 0),
        detail: `queued ${t.queued}, running ${t.running}`,
      }
    },
    async firstFailure() {
      const task = ((await get('/tasks?state=failed&limit=1')).tasks as Array<{ error?: unknown }>)[0]
      return JSON.stringify(task?.error ?? 'a cancelled task')
    },
    pids: { serve: [serve.proc.pid], workers: workers.map((w) => w.proc.pid) },
    async close() {
      await Promise.all(workers.map(stopChild))
      await stopChild(serve)
    },
  }
}

/** Waits until every task is finished; fails when none finishes for STALL_MS or a process of the phase exits. */
async function awaitFinished(spec: PhaseSpec, running: Running, own: Child[]): Promise<{ counts: Counts; at: number }> {
  let last = -1
  let lastChange = performance.now()
  for (;;) {
    const counts = await running.counts()
    const at = performance.now()
    const finished = counts.done + counts.failed
    if (finished >= N) return { counts, at }
    if (finished !== last) {
      last = finished
      lastChange = at
    } else if (at - lastChange > STALL_MS) {
      const outputs = own.map((c) => `--- ${c.label}:\n${c.output() || '(nothing)'}`).join('\n')
      throw new Error(
        `${spec.label}: no task finished in the last ${STALL_MS / 1000} s: ${counts.done} done, ${counts.failed} failed of ${N} (${counts.detail})\n${outputs}`,
      )
    }
    const dead = own.find((c) => c.proc.exitCode !== null || c.proc.signalCode !== null)
    if (dead)
      throw new Error(`${spec.label}: ${dead.label} exited (${dead.proc.exitCode ?? dead.proc.signalCode}) mid-run:\n${dead.output()}`)
    await Bun.sleep(POLL_MS)
  }
}

async function runPhase(spec: PhaseSpec, server: RedisServer): Promise<PhaseResult> {
  await (admin as Redis).flushall()
  const before = new Set(children)
  const started = spec.noop ? undefined : await startFake(spec)
  const fake = started?.child
  const running =
    spec.side === 'bullmq' ? await startBullmq(spec, started?.url, server.port) : await startOrch(spec, started?.url ?? '', server.url)
  const own = [...children].filter((c) => !before.has(c))
  try {
    await Bun.sleep(500)
    await (admin as Redis).config('RESETSTAT')
    const pids: Record<string, number[]> = { ...running.pids, ...(fake ? { fake: [fake.proc.pid] } : {}) }
    const cpuBefore = Object.fromEntries(Object.entries(pids).map(([role, list]) => [role, list.map(cpuMs)]))
    const redisBefore = await redisCpuMs()
    const selfBefore = process.cpuUsage()

    const t0 = performance.now()
    const finished = awaitFinished(spec, running, own)
    finished.catch(() => undefined)
    for (let from = 0; from < N; from += CHUNK) {
      const tasks = Array.from({ length: Math.min(CHUNK, N - from) }, (_, i) => chatTask(from + i))
      await running.submit(tasks)
    }
    const tSubmitted = performance.now()
    const { counts, at } = await finished
    if (counts.failed > 0) {
      throw new Error(`${spec.label}: ${counts.failed} of ${N} tasks failed; one of them: ${await running.firstFailure()}`)
    }

    const self = process.cpuUsage(selfBefore)
    const calls = await commandCalls()
    const stats = await info('stats')
    const cpuUs: Record<string, number> = {
      redis: ((await redisCpuMs()) - redisBefore) * 1000,
      submitter: self.user + self.system,
    }
    for (const [role, list] of Object.entries(pids)) {
      cpuUs[role] = list.reduce((sum, pid, i) => sum + (cpuMs(pid) - (cpuBefore[role]?.[i] ?? 0)) * 1000, 0)
    }
    cpuUs.total = Object.values(cpuUs).reduce((sum, us) => sum + us, 0)
    const scripts = [...calls].filter(([name]) => SCRIPT_COMMANDS.has(name)).reduce((sum, [, n]) => sum + n, 0)
    const top = [...calls]
      .filter(([name]) => name !== 'info' && name !== 'config|resetstat')
      .sort((a, b) => b[1] - a[1])
      .slice(0, 6)
      .map(([name, n]) => `${name} ${round(n / N)}`)
      .join(', ')
    const submitS = (tSubmitted - t0) / 1000
    const totalS = (at - t0) / 1000
    return {
      submitted_per_s: round(N / submitS),
      submit_s: round(submitS),
      completed_per_s: round(N / totalS),
      total_s: round(totalS),
      redis_cmds_per_task: round(Number(stats.get('total_commands_processed')) / N),
      redis_scripts_per_task: round(scripts / N),
      top_commands: top,
      cpu_us_per_task: Object.fromEntries(Object.entries(cpuUs).map(([role, us]) => [role, round(us / N)])),
    }
  } finally {
    await running.close()
    if (fake) await stopChild(fake)
  }
}

// ---------------------------------------------------------------------------------------------------------

const PHASES: PhaseSpec[] = [
  { key: 'bullmq_noop', label: 'BullMQ, no-op processor, 1 worker', side: 'bullmq', workers: 1, noop: true },
  { key: 'bullmq', label: 'BullMQ, /api/chat, 1 worker', side: 'bullmq', workers: 1 },
  { key: 'bullmq_2w', label: 'BullMQ, /api/chat, 2 workers', side: 'bullmq', workers: 2 },
  { key: 'orch_1w', label: 'orch, 1 worker', side: 'orch', workers: 1 },
  { key: 'orch_2w', label: 'orch, 2 workers', side: 'orch', workers: 2 },
]

async function main(): Promise<void> {
  redis = await startRedis(values.aof ? { settings: { appendonly: 'yes', appendfsync: 'everysec' } } : {})
  admin = new Redis(redis.url, { maxRetriesPerRequest: 1 })
  admin.on('error', (error) => {
    if (!interrupted) note(`redis: ${error.message}`)
  })
  const server = await info('server')
  const persistence = await admin.config('GET', 'appendfsync')
  const aofOn = ((await admin.config('GET', 'appendonly')) as string[])[1] === 'yes'
  note(
    `redis-server ${server.get('redis_version')} on port ${redis.port}, ${aofOn ? `AOF, appendfsync ${(persistence as string[])[1]}` : 'no persistence'}; ` +
      `${N} tasks per phase, concurrency ${C}, chunks of ${CHUNK}; ${cpus().length} CPUs`,
  )
  const results: Record<string, PhaseResult> = {}
  for (const spec of PHASES) {
    note(`\n# ${spec.label}`)
    const r = await runPhase(spec, redis)
    results[spec.key] = r
    note(
      `submitted ${r.submitted_per_s}/s (${r.submit_s} s), completed ${r.completed_per_s}/s (${r.total_s} s); ` +
        `Redis: ${r.redis_cmds_per_task} commands, ${r.redis_scripts_per_task} scripts per task (${r.top_commands})`,
    )
    note(
      `CPU µs per task: ${Object.entries(r.cpu_us_per_task)
        .map(([role, us]) => `${role} ${us}`)
        .join(', ')}`,
    )
  }
  report(results, aofOn)
}

function report(results: Record<string, PhaseResult>, aof: boolean): void {
  const r = (key: string) => results[key] as PhaseResult
  const figures: Record<string, number | string | boolean> = { tasks: N, concurrency: C, chunk: CHUNK, aof, cpus: cpus().length }
  for (const [key, p] of Object.entries(results)) {
    figures[`${key}_submitted_per_s`] = p.submitted_per_s
    figures[`${key}_submit_s`] = p.submit_s
    figures[`${key}_completed_per_s`] = p.completed_per_s
    figures[`${key}_total_s`] = p.total_s
    figures[`${key}_redis_cmds_per_task`] = p.redis_cmds_per_task
    figures[`${key}_redis_scripts_per_task`] = p.redis_scripts_per_task
    figures[`${key}_top_commands_per_task`] = p.top_commands
    for (const [role, us] of Object.entries(p.cpu_us_per_task)) figures[`${key}_cpu_us_per_task_${role}`] = us
  }
  const ratios = {
    orch_submit_vs_bullmq_add: ratio(r('orch_1w').submitted_per_s, r('bullmq').submitted_per_s),
    orch_1w_vs_bullmq: ratio(r('orch_1w').completed_per_s, r('bullmq').completed_per_s),
    orch_2w_vs_bullmq: ratio(r('orch_2w').completed_per_s, r('bullmq').completed_per_s),
    orch_2w_vs_bullmq_2w: ratio(r('orch_2w').completed_per_s, r('bullmq_2w').completed_per_s),
    bullmq_vs_noop: ratio(r('bullmq').completed_per_s, r('bullmq_noop').completed_per_s),
  }
  const goal = 0.5
  const met = {
    goal_submit_met: ratios.orch_submit_vs_bullmq_add >= goal,
    goal_1w_met: ratios.orch_1w_vs_bullmq >= goal,
    goal_2w_met: ratios.orch_2w_vs_bullmq >= goal,
  }
  Object.assign(figures, ratios, met, {
    // all.ts's rows
    orch_submitted_per_s: r('orch_1w').submitted_per_s,
    bullmq_added_per_s: r('bullmq').submitted_per_s,
    bullmq_completed_per_s: r('bullmq').completed_per_s,
  })

  const roles = ['redis', 'submitter', 'serve', 'workers', 'fake', 'total']
  const head = ['phase', 'submit/s', 'submit s', 'done/s', 'total s', 'cmds/task', 'scripts/task', ...roles.map((x) => `µs ${x}`)]
  const widths = [36, 10, 9, 9, 8, 10, 13, 10, 13, 9, 11, 8, 9]
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 10) : c.padStart(widths[i] ?? 10))).join(' ')
  console.log(`\norch cluster mode against bare BullMQ: ${N} tasks a phase, concurrency ${C}, ${aof ? 'AOF everysec' : 'no AOF'}`)
  console.log(line(head))
  for (const spec of PHASES) {
    const p = r(spec.key)
    const cpu = roles.map((role) => (p.cpu_us_per_task[role] === undefined ? '' : String(p.cpu_us_per_task[role])))
    console.log(
      line([
        spec.label,
        String(p.submitted_per_s),
        String(p.submit_s),
        String(p.completed_per_s),
        String(p.total_s),
        String(p.redis_cmds_per_task),
        String(p.redis_scripts_per_task),
        ...cpu,
      ]),
    )
  }
  const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met')
  console.log(`\ngoal: orch ≥ ${goal}× bare BullMQ`)
  console.log(`  submitted/s, orch ÷ BullMQ addBulk:           ×${ratios.orch_submit_vs_bullmq_add}  ${verdict(met.goal_submit_met)}`)
  console.log(`  completed/s, orch 1 worker ÷ BullMQ 1 worker: ×${ratios.orch_1w_vs_bullmq}  ${verdict(met.goal_1w_met)}`)
  console.log(`  completed/s, orch 2 workers ÷ BullMQ 1 worker: ×${ratios.orch_2w_vs_bullmq}  ${verdict(met.goal_2w_met)}`)
  console.log(`  completed/s, orch 2 workers ÷ BullMQ 2 workers: ×${ratios.orch_2w_vs_bullmq_2w}`)
  console.log(`  BullMQ /api/chat ÷ BullMQ no-op: ×${ratios.bullmq_vs_noop}`)
  console.log(JSON.stringify(figures))
}

try {
  await main()
} catch (error) {
  if (!interrupted) console.error(`redis bench failed: ${error instanceof Error ? error.message : String(error)}`)
  process.exitCode = 1
} finally {
  await cleanup()
}
