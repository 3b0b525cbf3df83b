/**
 * Real inference through orch: `orch model-worker` (node-llama-cpp on a GGUF model) straight, and behind
 * `orch serve`, each figure against a baseline measured in the same run.
 *  - direct vs orch: a model-worker (parallel 1) and an `orch serve` with one llamacpp pool of one worker
 *    (same model, same threads, the response cache off so every request reaches the model), in interleaved
 *    rounds (the order flips each round, so drift on a noisy machine hits both alike). A round is
 *    `--requests` sequential streaming /api/chat calls at temperature 0 with num_predict = `--tokens`.
 *    tokens/s = the `eval_count`s added up ÷ the calls' wall time as the client sees it (request sent to
 *    last byte read); the figure is each side's median round, and `orch_vs_direct` their ratio (goal ≥ 0.95,
 *    printed, never asserted). Time to first token: request sent to the first NDJSON chunk, median.
 *  - parallel 1 vs 4: a model-worker with `--parallel 4` and the one with `--parallel 1`, each hit by 4
 *    concurrent clients (`--clients`) in interleaved rounds; aggregate tokens/s = the `eval_count`s ÷ the
 *    round's wall time; `parallel_gain` their ratio, with each worker's `/health` `peak_parallel` (4 when
 *    the requests overlapped).
 * Without `--model`, the random-weight model of scripts/make-tiny-gguf.ts is written to a temp dir:
 * `--shape tiny` (the tests' 470 KB model: a token costs well under a millisecond, so orch's own cost per
 * streamed chunk shows and batching has nothing to share) or `--shape small` (110 MB, 8 layers of 512: a
 * token costs milliseconds on one core, as a small real model's does).
 * On a 2-core machine use one thread (the default): two are many times slower there.
 *
 *   bun scripts/bench/model.ts [--model FILE.gguf] [--threads 1] [--tokens 128] [--rounds 6] [--requests 16]
 *                              [--clients 4] [--context auto|N] [--timeout 120] [--shape tiny|small] [--quick]
 * Human-readable lines go to stderr; the last line on stdout is one JSON object. Every process it starts
 * is stopped at the end, on an error and on SIGINT/SIGTERM.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { readGguf } from '../../src/engine/gguf.ts'
import { type Shape, SMALL, TINY, writeTinyGguf } from '../make-tiny-gguf.ts'
import { spawnServer, stopAll, stopOnSignals, stopServer } from './servers/spawn.ts'

const ROOT = resolve(import.meta.dir, '../..')
const ORCH = join(ROOT, 'commands/index.ts')
/** The name every worker serves the model under, so one request body fits all. */
const NAME = 'bench'
const note = (line: string) => console.error(line)

function usage(message: string): never {
  note(`model.ts: ${message}`)
  note(
    'usage: bun scripts/bench/model.ts [--model FILE.gguf] [--threads N] [--tokens N] [--rounds N] [--requests N] [--clients N] [--context auto|N] [--timeout S] [--shape tiny|small] [--quick]',
  )
  process.exit(2)
}

let values: Record<string, string | boolean | undefined>
try {
  values = parseArgs({
    args: process.argv.slice(2),
    options: {
      model: { type: 'string' },
      threads: { type: 'string', default: '1' },
      tokens: { type: 'string', default: '128' },
      rounds: { type: 'string' },
      requests: { type: 'string' },
      clients: { type: 'string', default: '4' },
      context: { type: 'string', default: 'auto' },
      timeout: { type: 'string', default: '120' },
      shape: { type: 'string', default: 'tiny' },
      quick: { type: 'boolean', default: false },
    },
  }).values
} catch (err) {
  usage(err instanceof Error ? err.message : String(err))
}
const QUICK = values.quick === true
function count(flag: string, fallback: string, min: number): number {
  const raw = typeof values[flag] === 'string' ? (values[flag] as string) : fallback
  if (!/^\d+$/.test(raw) || Number(raw) < min) usage(`--${flag} expects an integer >= ${min}, got "${raw}"`)
  return Number(raw)
}
const THREADS = count('threads', '1', 0)
const TOKENS = count('tokens', '128', 1)
const ROUNDS = count('rounds', QUICK ? '2' : '6', 1)
const REQUESTS = count('requests', QUICK ? '4' : '16', 1)
const CLIENTS = count('clients', '4', 2)
const TIMEOUT_S = count('timeout', '120', 1)
const CONTEXT = String(values.context)
if (CONTEXT !== 'auto' && !(/^\d+$/.test(CONTEXT) && Number(CONTEXT) >= 16))
  usage(`--context expects "auto" or an integer >= 16, got "${CONTEXT}"`)
const modelArg = typeof values.model === 'string' ? resolve(values.model) : undefined
if (modelArg && !existsSync(modelArg)) usage(`--model ${modelArg}: no such file`)
if (modelArg) {
  try {
    readGguf(modelArg)
  } catch (err) {
    usage(`--model ${modelArg}: ${err instanceof Error ? err.message : String(err)}`)
  }
}

const SHAPES: Record<string, Shape> = { tiny: TINY, small: SMALL }
const SHAPE = SHAPES[String(values.shape)]
if (!SHAPE) usage(`--shape expects tiny or small, got "${String(values.shape)}"`)

const work = mkdtempSync(join(tmpdir(), 'orch-bench-model-'))
const MODEL = modelArg ?? join(work, 'tiny.gguf')
if (!modelArg) writeTinyGguf(MODEL, 42, SHAPE)

let cleaned = false
/** Set on SIGINT/SIGTERM: what fails after it is the stopping, not the bench. */
let interrupted = false
async function cleanUp(): Promise<void> {
  if (cleaned) return
  cleaned = true
  await stopAll()
  rmSync(work, { recursive: true, force: true })
}
stopOnSignals(cleanUp, (signal) => {
  interrupted = true
  note(`${signal}: stopping every process of the bench`)
})

// Servers ----------------------------------------------------------------------------------------------------

interface Server {
  url: string
  pid: number
}

/** A server's first JSON object: its url, or (with --json) the error it stopped on. */
async function started(args: string[], cwd: string): Promise<Server> {
  const server = await spawnServer(args, cwd, 'inherit')
  if (typeof server.url === 'string') return server
  await stopServer(server.pid)
  throw new Error(`orch ${args[1]} did not start: it printed no url (run it alone to see why: bun ${args.join(' ')})`)
}

function startWorker(parallel: number): Promise<Server> {
  const args = [ORCH, 'model-worker', '--model', MODEL, '--name', NAME, '--port', '0', '--threads', String(THREADS)]
  args.push('--parallel', String(parallel), '--context', CONTEXT, '--json')
  return started(args, work)
}

/** `orch serve` with one llamacpp pool of one worker, and the url of that worker once it answers. */
async function startOrch(): Promise<Server & { worker: string }> {
  const cwd = mkdtempSync(join(work, 'orch-'))
  writeFileSync(
    join(cwd, 'orch.yaml'),
    [
      // No backends at all would mean the local Ollama; this one is a closed port for a model never asked
      // for, so every request goes to the pool.
      'backends: [{ name: unused, type: ollama, url: "http://127.0.0.1:9", models: [unused] }]',
      'pools:',
      `  - name: bench`,
      '    profile: llamacpp',
      `    model: ${JSON.stringify(MODEL)}`,
      `    models: [${NAME}]`,
      '    pool_size: 1',
      `    llamacpp: { threads: ${THREADS}, parallel: 1, context_size: ${CONTEXT} }`,
      'infrastructure_system: { llm_orchestration: { caching: { enabled: false } } }',
      'logging: { level: error }',
      '',
    ].join('\n'),
  )
  const orch = await started([ORCH, 'serve', '--port', '0', '--json', '--home', join(cwd, '.orch')], cwd)
  const deadline = Date.now() + 120_000
  for (;;) {
    const ready = (await (await fetch(`${orch.url}/ready`)).json()) as { backends?: Array<{ name: string; url: string; healthy: boolean }> }
    const worker = ready.backends?.find((b) => b.name.startsWith('bench/') && b.healthy)
    if (worker) return { ...orch, worker: worker.url }
    if (Date.now() > deadline) throw new Error(`orch serve's llamacpp worker did not become healthy in 120 s: ${JSON.stringify(ready)}`)
    await Bun.sleep(100)
  }
}

/** CPU milliseconds (user + system) a process has used so far; NaN where /proc is not there. */
const CLK_TCK = Number(Bun.spawnSync(['getconf', 'CLK_TCK']).stdout.toString().trim()) || 100
function cpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
    return ((Number(fields[11]) + Number(fields[12])) / CLK_TCK) * 1000
  } catch {
    return Number.NaN
  }
}

/** The `orch model-worker` process under `pid` (its pool starts it through a watchdog), if /proc shows it. */
function workerUnder(pid: number): number | undefined {
  const children = (p: number) => {
    try {
      return readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)
    } catch {
      return []
    }
  }
  const queue = children(pid)
  while (queue.length > 0) {
    const next = queue.shift() as number
    let argv: string[] = []
    try {
      argv = readFileSync(`/proc/${next}/cmdline`, 'utf8').split('\0')
    } catch {}
    if (argv.includes('model-worker') && !argv.some((a) => a.endsWith('watchdog.ts'))) return next
    queue.push(...children(next))
  }
  return undefined
}

const perToken = (ms: number | undefined, tokens: number) =>
  ms === undefined || !Number.isFinite(ms) ? null : Math.round((ms * 1000) / tokens)

interface Health {
  requests: number
  peak_parallel: number
}
const health = async (url: string) => (await (await fetch(`${url}/health`)).json()) as Health

// Measuring --------------------------------------------------------------------------------------------------

interface Call {
  /** Request sent to the first NDJSON chunk. */
  ttftMs: number
  /** Request sent to the last byte read. */
  wallMs: number
  /** First NDJSON chunk to the last byte read: the streaming alone. */
  streamMs: number
  evalCount: number
  evalNs: number
  text: string
}

/** One streaming /api/chat call at temperature 0, read to its end; one that outlasts `--timeout` fails the run. */
async function chat(url: string, prompt: string): Promise<Call> {
  try {
    return await chatOnce(url, prompt)
  } catch (err) {
    if (!(err instanceof Error && err.name === 'TimeoutError')) throw err
    const state = await fetch(`${url}/health`, { signal: AbortSignal.timeout(5000) }).then(
      (r) => r.text(),
      (e: unknown) => `no answer (${e instanceof Error ? e.message : String(e)})`,
    )
    throw new Error(`POST ${url}/api/chat did not finish within ${TIMEOUT_S} s; its /health: ${state}`)
  }
}

async function chatOnce(url: string, prompt: string): Promise<Call> {
  const body = {
    model: NAME,
    stream: true,
    messages: [{ role: 'user', content: prompt }],
    options: { temperature: 0, num_predict: TOKENS },
  }
  const started = performance.now()
  const res = await fetch(`${url}/api/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(TIMEOUT_S * 1000),
  })
  if (!res.ok || !res.body) throw new Error(`POST ${url}/api/chat: HTTP ${res.status} ${await res.text()}`)
  const reader = res.body.getReader()
  const decoder = new TextDecoder()
  let buffer = ''
  let first = 0
  let text = ''
  let last: { eval_count?: number; eval_duration?: number } | undefined
  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    if (first === 0 && value.length > 0) first = performance.now()
    buffer += decoder.decode(value, { stream: true })
    let at = buffer.indexOf('\n')
    while (at >= 0) {
      const line = buffer.slice(0, at).trim()
      buffer = buffer.slice(at + 1)
      at = buffer.indexOf('\n')
      if (line === '') continue
      const chunk = JSON.parse(line) as {
        error?: string
        done?: boolean
        message?: { content?: string }
        eval_count?: number
        eval_duration?: number
      }
      if (chunk.error) throw new Error(`POST ${url}/api/chat: ${chunk.error}`)
      text += chunk.message?.content ?? ''
      if (chunk.done) last = chunk
    }
  }
  const ended = performance.now()
  if (typeof last?.eval_count !== 'number') throw new Error(`POST ${url}/api/chat: the stream ended without a done chunk with eval_count`)
  return {
    ttftMs: first - started,
    wallMs: ended - started,
    streamMs: ended - first,
    evalCount: last.eval_count,
    evalNs: last.eval_duration ?? 0,
    text,
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0)
const round1 = (x: number) => Math.round(x * 10) / 10
const ratio = (a: number, b: number) => Number((a / b).toFixed(3))

/** `--requests` sequential calls: tokens/s over their wall time, and the calls. */
async function sequential(url: string, round: number): Promise<{ tokS: number; streamTokS: number; calls: Call[] }> {
  const calls: Call[] = []
  for (let i = 0; i < REQUESTS; i++) calls.push(await chat(url, `round ${round}, request ${i}: tell me a story`))
  const tokens = sum(calls.map((c) => c.evalCount))
  return { tokS: tokens / (sum(calls.map((c) => c.wallMs)) / 1000), streamTokS: tokens / (sum(calls.map((c) => c.streamMs)) / 1000), calls }
}

/** `--clients` clients at once, each with `--requests` ÷ clients (at least 1) sequential calls: aggregate tokens/s. */
async function concurrent(url: string, round: number): Promise<number> {
  const each = Math.max(1, Math.round(REQUESTS / CLIENTS))
  const started = performance.now()
  const perClient = await Promise.all(
    Array.from({ length: CLIENTS }, async (_, client) => {
      let tokens = 0
      for (let i = 0; i < each; i++)
        tokens += (await chat(url, `round ${round}, client ${client}, request ${i}: tell me a story`)).evalCount
      return tokens
    }),
  )
  return sum(perClient) / ((performance.now() - started) / 1000)
}

// The run ----------------------------------------------------------------------------------------------------

try {
  const startedAt = performance.now()
  const label = modelArg ?? `${String(values.shape)} (scripts/make-tiny-gguf.ts --shape ${String(values.shape)})`
  note(`model ${label}, ${THREADS} thread(s), ${TOKENS} tokens a request, ${ROUNDS} rounds of ${REQUESTS} requests, ${cpus().length} CPUs`)

  // direct vs orch
  const direct = await startWorker(1)
  const orch = await startOrch()
  note(`direct worker ${direct.url}; orch serve ${orch.url} (its worker ${orch.worker})`)
  const orchWorkerPid = workerUnder(orch.pid)
  const newSide = (name: string, url: string, pids: Array<number | undefined>) => ({
    name,
    url,
    pids,
    tokS: [] as number[],
    streamTokS: [] as number[],
    ttft: [] as number[],
    evalNs: 0,
    evalCount: 0,
    /** CPU ms of each of `pids` over this side's rounds. */
    cpuMs: pids.map(() => 0),
    texts: [] as string[],
  })
  // direct: its worker; orch: orch serve and the worker its pool started.
  const sides = [newSide('direct', direct.url, [direct.pid]), newSide('orch', orch.url, [orch.pid, orchWorkerPid])]
  for (const side of sides) await chat(side.url, 'warm-up') // JIT, connections, the model's first batch
  const orchWorkerBefore = (await health(orch.worker)).requests
  for (let round = 1; round <= ROUNDS; round++) {
    for (const side of round % 2 ? sides : [...sides].reverse()) {
      const cpuBefore = side.pids.map((pid) => (pid === undefined ? Number.NaN : cpuMs(pid)))
      const r = await sequential(side.url, round)
      side.pids.forEach((pid, i) => {
        side.cpuMs[i] = (side.cpuMs[i] as number) + (pid === undefined ? Number.NaN : cpuMs(pid)) - (cpuBefore[i] as number)
      })
      side.tokS.push(r.tokS)
      side.streamTokS.push(r.streamTokS)
      side.ttft.push(...r.calls.map((c) => c.ttftMs))
      side.evalCount += sum(r.calls.map((c) => c.evalCount))
      side.evalNs += sum(r.calls.map((c) => c.evalNs))
      if (round === 1) side.texts = r.calls.map((c) => c.text)
      note(
        `round ${round} ${side.name.padEnd(6)}: ${Math.round(r.tokS)} tok/s, ttft p50 ${round1(median(r.calls.map((c) => c.ttftMs)))} ms`,
      )
    }
  }
  const [d, o] = sides as [(typeof sides)[0], (typeof sides)[0]]
  const reached = (await health(orch.worker)).requests - orchWorkerBefore
  // At temperature 0 the same prompt gives the same text: orch passed the model's answer through untouched.
  const sameText = d.texts.every((t, i) => t === o.texts[i])
  await stopServer(orch.pid)

  // parallel 1 vs 4
  const wide = await startWorker(CLIENTS)
  note(`parallel ${CLIENTS} worker ${wide.url}; parallel 1: the direct worker`)
  const par = [
    { name: `parallel ${CLIENTS}`, url: wide.url, tokS: [] as number[] },
    { name: 'parallel 1', url: direct.url, tokS: [] as number[] },
  ]
  await concurrent(wide.url, 0) // warm-up of the batched path
  for (let round = 1; round <= ROUNDS; round++) {
    for (const side of round % 2 ? par : [...par].reverse()) {
      const tokS = await concurrent(side.url, round)
      side.tokS.push(tokS)
      note(`round ${round} ${side.name.padEnd(10)}: ${Math.round(tokS)} tok/s aggregate, ${CLIENTS} clients`)
    }
  }
  const peakWide = (await health(wide.url)).peak_parallel
  const peakOne = (await health(direct.url)).peak_parallel

  const summary = {
    direct_tok_s: Math.round(median(d.tokS)),
    orch_tok_s: Math.round(median(o.tokS)),
    orch_vs_direct: ratio(median(o.tokS), median(d.tokS)),
    ttft_ms: { direct: round1(median(d.ttft)), orch: round1(median(o.ttft)) },
    direct_ttft_ms: round1(median(d.ttft)),
    orch_ttft_ms: round1(median(o.ttft)),
    // The same tokens over the streaming alone (first chunk to last byte), without the time to first token.
    direct_stream_tok_s: Math.round(median(d.streamTokS)),
    orch_stream_tok_s: Math.round(median(o.streamTokS)),
    orch_vs_direct_stream: ratio(median(o.streamTokS), median(d.streamTokS)),
    // What the workers measured themselves (eval_count ÷ eval_duration): the model's own pace.
    direct_worker_tok_s: Math.round(d.evalCount / (d.evalNs / 1e9)),
    orch_worker_tok_s: Math.round(o.evalCount / (o.evalNs / 1e9)),
    // CPU time per generated token (from /proc): the workers', and orch serve's own for proxying the stream.
    direct_worker_cpu_us_per_token: perToken(d.cpuMs[0], d.evalCount),
    orch_worker_cpu_us_per_token: perToken(o.cpuMs[1], o.evalCount),
    orch_serve_cpu_us_per_token: perToken(o.cpuMs[0], o.evalCount),
    orch_requests_sent: ROUNDS * REQUESTS,
    orch_requests_at_worker: reached,
    same_text: sameText,
    parallel_1_tok_s: Math.round(median(par[1]?.tokS ?? [])),
    parallel_4_tok_s: Math.round(median(par[0]?.tokS ?? [])),
    parallel_gain: ratio(median(par[0]?.tokS ?? []), median(par[1]?.tokS ?? [])),
    // `_4` names the --clients figure whatever --clients is, so all.ts finds it under one key.
    peak_parallel_4: peakWide,
    peak_parallel_1: peakOne,
    clients: CLIENTS,
    tokens: TOKENS,
    threads: THREADS,
    rounds: ROUNDS,
    requests: REQUESTS,
    model: label,
    cpus: cpus().length,
    seconds: round1((performance.now() - startedAt) / 1000),
  }
  const rows: Array<[string, unknown, unknown, unknown]> = [
    ['tokens/s, sequential', summary.orch_tok_s, summary.direct_tok_s, `×${summary.orch_vs_direct} (goal ≥ 0.95)`],
    ['tokens/s, streaming alone', summary.orch_stream_tok_s, summary.direct_stream_tok_s, `×${summary.orch_vs_direct_stream}`],
    ['time to first token p50 (ms)', summary.orch_ttft_ms, summary.direct_ttft_ms, ''],
    ['worker-measured tokens/s', summary.orch_worker_tok_s, summary.direct_worker_tok_s, ''],
    ['worker CPU µs per token', summary.orch_worker_cpu_us_per_token, summary.direct_worker_cpu_us_per_token, ''],
    ['orch serve CPU µs per token', summary.orch_serve_cpu_us_per_token, '', ''],
    [
      `tokens/s, ${CLIENTS} clients: parallel ${CLIENTS} vs 1`,
      summary.parallel_4_tok_s,
      summary.parallel_1_tok_s,
      `×${summary.parallel_gain}`,
    ],
    [`peak_parallel: parallel ${CLIENTS} vs 1`, peakWide, peakOne, ''],
  ]
  note('')
  note(`${'figure'.padEnd(40)} ${'orch / p4'.padStart(10)} ${'direct / p1'.padStart(12)}  ratio`)
  for (const [name, value, base, r] of rows) note(`${name.padEnd(40)} ${String(value).padStart(10)} ${String(base).padStart(12)}  ${r}`)
  if (reached !== summary.orch_requests_sent) note(`warning: orch's worker saw ${reached} of ${summary.orch_requests_sent} requests`)
  if (!sameText) note('warning: orch and the direct worker gave different text for the same prompt at temperature 0')
  if (peakWide < CLIENTS) note(`warning: the parallel ${CLIENTS} worker never generated for ${CLIENTS} requests at once (peak ${peakWide})`)
  console.log(JSON.stringify(summary))
} catch (err) {
  if (!interrupted) {
    note(`model.ts failed: ${err instanceof Error ? err.message : String(err)}`)
    process.exitCode = 1
  }
} finally {
  await cleanUp()
}
