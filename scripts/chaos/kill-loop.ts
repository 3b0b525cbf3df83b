/**
 * The kill -9 chaos loop: does the durable task queue keep its promises when `orch serve` dies at a random
 * moment, again and again?
 *
 *   bun scripts/chaos/kill-loop.ts --cycles 100 [--seed 1] [--home DIR] ...   (--help for every flag)
 *
 * It starts the Ollama test double (scripts/chaos/model-double.ts, its own process, which logs every
 * generate call) and `orch serve` as a real child process on a fresh home, whose only backend is the
 * double. Clients keep submitting durable generate tasks, each with a unique prompt, and remember every
 * prompt (and id) answered 2xx. Each cycle: serve runs for a seeded random time while tasks run, gets
 * SIGKILL, state.db is opened read-only for `PRAGMA integrity_check` and a snapshot of the task states,
 * and serve is started again on the same home. After the last cycle no more is submitted, serve drains the
 * queue and is stopped with SIGTERM, and the loop checks:
 *
 *   lost               accepted (2xx) tasks that are not `done` in the end (missing, failed, still queued)
 *   rerun_finished     model calls of a task that started after it was finished: after a snapshot that saw
 *                      it done, or after its finished_at
 *   extra_runs         model calls beyond the first, summed over tasks (a "run" is a generate call that
 *                      reached the double, completed or cut off by the kill)
 *   over_allowance     tasks with more runs than 1 + the kills they were running at (state `running` in the
 *                      snapshot after that kill): each kill may cost a running task one more run, no more
 *   integrity_failures snapshots whose integrity_check did not answer "ok", or whose kept task counts
 *                      (task_counts) differ from the rows (or that could not be read)
 *
 * The last line on stdout is one JSON object; exit 0 only when lost, rerun_finished, over_allowance,
 * integrity_failures and done_without_run are 0, something was accepted and the queue drained.
 * Progress goes to stderr, a line per cycle. Every child process is stopped at the end, on failure too
 * (and the double exits on its own when this process goes, even by SIGKILL).
 */
import { Database } from 'bun:sqlite'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import type { Subprocess } from 'bun'
import { stateDbPath } from '../../src/core/home.ts'
import { prng } from '../../test/helpers/prng.ts'

const HERE = import.meta.dir
const REPO = resolve(HERE, '../..')

const HELP = `bun scripts/chaos/kill-loop.ts [options]

Kill orch serve with SIGKILL at random moments while durable tasks are submitted and run; check that no
accepted task is lost, none finished runs again, each kill costs a running task at most one more run,
and state.db stays intact. Last stdout line: JSON; exit 0 when all of that holds.

  --cycles N            kill/restart cycles (default 10)
  --seed N              seed of the kill moments (default 1)
  --home DIR            ORCH_HOME to use (must hold no state.db; kept); default a temp dir, removed on success
  --keep                keep the temp home even on success
  --root DIR            repository whose commands/index.ts is run as serve (default this one; for trying
                        the checker against a deliberately broken copy)
  --min-up-ms MS        shortest time serve runs before the kill, from when it printed its url (default 500)
  --max-up-ms MS        longest (default 1500)
  --submitters N        concurrent submitting clients (default 2)
  --submit-gap-ms MS    pause of each client between two submissions (default 40)
  --concurrency N       the backend's concurrency in serve's config (default 8)
  --token-delay-ms MS   the double's delay between streamed tokens (default 20)
  --tokens N            tokens per answer (default 8; a call streams for about tokens x token-delay-ms)
  --max-stalled N       tasks.max_stalled (default 1000: a task killed mid-run many times must not fail as
                        stalled, which would count as lost; the product default is 1)
  --lease-ms MS         tasks.lease_ms (default 5000)
  --synchronous MODE    tasks.synchronous, FULL or NORMAL (default FULL)
  --drain-timeout-ms MS how long the final serve may take to finish everything (default 60000)
  --help                this text
`

export interface LoopOptions {
  cycles: number
  seed: number
  home: string | undefined
  keep: boolean
  root: string
  minUpMs: number
  maxUpMs: number
  submitters: number
  submitGapMs: number
  concurrency: number
  tokenDelayMs: number
  tokens: number
  maxStalled: number
  leaseMs: number
  synchronous: 'FULL' | 'NORMAL'
  drainTimeoutMs: number
}

export interface LoopResult {
  cycles: number
  accepted: number
  lost: number
  rerun_finished: number
  extra_runs: number
  integrity_failures: number
  over_allowance: number
  tasks_over_2_runs: number
  max_runs: number
  done_without_run: number
  tasks_in_db: number
  unacknowledged_in_db: number
  duplicate_prompts: number
  id_mismatches: number
  bad_results: number
  final_states: Record<string, number>
  model_calls: number
  completed_calls: number
  running_at_kills: number
  kills_with_running: number
  max_kills_running_at: number
  cut_calls_at_kills: number
  /** Calls a kill cut off whose task was not `running` in the snapshot after it (a run without a claim?). */
  cut_not_running: number
  submit_errors: number
  submit_refused: number
  drained: boolean
  drain_ms: number
  wall_ms: number
  seed: number
  home: string
  /** Every process the loop started (all stopped when it returns). */
  pids: number[]
  ok: boolean
  /** A few examples of what went wrong, by prompt. */
  examples: Record<string, string[]>
}

// ---------------------------------------------------------------------------------------------------------
// pieces

export interface DbSnapshot {
  integrity: string
  rows: Array<{ id: string; state: string; prompt: string | null; finished_at: number | null; response: string | null }>
  /** The tasks per state the queue keeps (task_counts), to hold against the rows. */
  counts: Record<string, number>
}

/** A read-only connection to `dbPath`, closed after `use`: it never writes the file. */
function readOnly<T>(dbPath: string, use: (all: <R>(sql: string) => R[]) => T): T {
  const db = new Database(dbPath, { readonly: true })
  // Prepared statements finalized before close: a bun:sqlite connection closed with live statements stays
  // half-open, and would keep serve from removing its WAL on a clean stop.
  const all = <R>(sql: string): R[] => {
    const statement = db.prepare(sql)
    try {
      return statement.all() as R[]
    } finally {
      statement.finalize()
    }
  }
  try {
    return use(all)
  } finally {
    db.close()
  }
}

const integrityOf = (all: <R>(sql: string) => R[]) =>
  all<Record<string, string>>('PRAGMA integrity_check')
    .map((row) => Object.values(row)[0])
    .join('; ')

/** `PRAGMA integrity_check` and every task, read-only. */
export function readState(dbPath: string): DbSnapshot {
  return readOnly(dbPath, (all) => ({
    integrity: integrityOf(all),
    rows: all<DbSnapshot['rows'][number]>(
      `SELECT id, state, json_extract(payload, '$.prompt') AS prompt, finished_at,
              json_extract(result, '$.response') AS response FROM tasks`,
    ),
    counts: Object.fromEntries(all<{ state: string; n: number }>('SELECT state, n FROM task_counts').map((r) => [r.state, r.n])),
  }))
}

/** Where the kept counts differ from the rows: "state kept N, rows M" for each; empty when they agree. */
export function countMismatches(snap: DbSnapshot): string[] {
  const rows: Record<string, number> = {}
  for (const row of snap.rows) rows[row.state] = (rows[row.state] ?? 0) + 1
  const states = new Set([...Object.keys(rows), ...Object.keys(snap.counts)])
  return [...states]
    .filter((state) => (snap.counts[state] ?? 0) !== (rows[state] ?? 0))
    .map((state) => `${state} kept ${snap.counts[state] ?? 0}, rows ${rows[state] ?? 0}`)
}

/** The integrity verdict alone, read-only; an error opening or reading the file is a failure too. */
export function checkIntegrity(dbPath: string): { ok: boolean; detail: string } {
  try {
    const integrity = readOnly(dbPath, integrityOf)
    return { ok: integrity === 'ok', detail: integrity }
  } catch (error) {
    return { ok: false, detail: (error as Error).message }
  }
}

interface DoubleCall {
  id: number
  prompt: string | null
  started_at: number
  ended_at: number | null
  status: number | null
  aborted: boolean
}

/** The environment of a child: this one's, without ORCH_* variables. */
function childEnv(): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith('ORCH_') && key !== 'FORCE_COLOR') env[key] = value
  }
  return { ...env, NO_COLOR: '1' }
}

/** Read a child's stdout until the first complete JSON object (serve --json prints it indented). */
async function firstJson<T>(proc: Subprocess<'pipe' | 'ignore', 'pipe', any>, what: string, timeoutMs: number): Promise<T> {
  const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader()
  const decoder = new TextDecoder()
  let text = ''
  const deadline = Date.now() + timeoutMs
  try {
    while (Date.now() < deadline) {
      const left = deadline - Date.now()
      const next = await Promise.race([reader.read(), Bun.sleep(left).then(() => 'timeout' as const)])
      if (next === 'timeout') break
      if (next.done) throw new Error(`${what} exited (code ${await proc.exited}) before printing its address: ${text.trim()}`)
      text += decoder.decode(next.value, { stream: true })
      const start = text.indexOf('{')
      if (start >= 0) {
        try {
          return JSON.parse(text.slice(start)) as T
        } catch {
          // not complete yet
        }
      }
    }
    throw new Error(`${what} printed no address within ${timeoutMs} ms: ${text.trim()}`)
  } finally {
    reader.releaseLock()
  }
}

// ---------------------------------------------------------------------------------------------------------
// the loop

export async function runKillLoop(options: LoopOptions, log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)) {
  const wallStart = performance.now()
  const random = prng(options.seed)
  const ownHome = options.home === undefined
  const home = options.home ? resolve(options.home) : mkdtempSync(join(tmpdir(), 'orch-chaos-'))
  mkdirSync(join(home, 'chaos-logs'), { recursive: true })
  const dbPath = stateDbPath(home)
  if (existsSync(dbPath)) throw new Error(`${dbPath} exists: the loop needs a home without tasks (or omit --home)`)

  const children = new Set<Subprocess<any, any, any>>()
  const killAll = () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
  const onSignal = (signal: NodeJS.Signals) => {
    killAll()
    process.exit(signal === 'SIGINT' ? 130 : 143)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  process.on('exit', killAll)

  let result: LoopResult | undefined
  try {
    // --- the double
    const double = Bun.spawn(
      [
        process.execPath,
        join(HERE, 'model-double.ts'),
        '--token-delay-ms',
        String(options.tokenDelayMs),
        '--tokens',
        String(options.tokens),
      ],
      { cwd: REPO, env: childEnv(), stdin: 'pipe', stdout: 'pipe', stderr: Bun.file(join(home, 'chaos-logs', 'double.log')) },
    )
    children.add(double)
    const fake = await firstJson<{ url: string; control: string; reply: string }>(double, 'the model double', 15_000)
    // The double kills the serve processes named here if this process dies without stopping them.
    const tellDouble = (line: string) => {
      if (double.exitCode !== null) return
      double.stdin.write(`${line}\n`)
      double.stdin.flush()
    }

    // Calls by id; re-read from the oldest one still open, so late endings are seen too.
    const calls = new Map<number, DoubleCall>()
    let doubleNow = 0
    let doubleInFlight = 0
    let epochOffset = 0 // Date.now() − the double's performance.now(), estimated at each poll
    const pollCalls = async () => {
      let after = 0
      for (const call of calls.values()) after = Math.max(after, call.id)
      for (const call of calls.values()) if (call.ended_at === null) after = Math.min(after, call.id - 1)
      const sent = Date.now()
      const answer = (await (await fetch(`${fake.control}/calls?after=${after}`)).json()) as {
        now: number
        in_flight: number
        calls: DoubleCall[]
      }
      epochOffset = (sent + Date.now()) / 2 - answer.now
      doubleNow = answer.now
      doubleInFlight = answer.in_flight
      for (const call of answer.calls) calls.set(call.id, call)
    }
    const maxCallId = () => {
      let max = 0
      for (const id of calls.keys()) max = Math.max(max, id)
      return max
    }
    /** After a kill: until the double has seen every connection of the dead serve close. */
    const settleDouble = async () => {
      const deadline = Date.now() + 3000
      let lastMax = -1
      for (;;) {
        await pollCalls()
        const max = maxCallId()
        if ((doubleInFlight === 0 && max === lastMax) || Date.now() > deadline) return
        lastMax = max
        await Bun.sleep(40)
      }
    }

    // --- serve's config: the double as the only backend; nothing written outside the home
    const configFile = join(home, 'chaos-orch.yaml')
    writeFileSync(
      configFile,
      [
        'backends:',
        '  - name: double',
        '    type: ollama',
        `    url: ${fake.url}`,
        `    concurrency: ${options.concurrency}`,
        'runtime:',
        '  ollama:',
        '    concurrency: 64',
        'tasks:',
        `  max_stalled: ${options.maxStalled}`,
        // Each kill while a task runs costs it an attempt (and a stall): neither may fail it here.
        `  max_attempts: ${Math.max(100, options.cycles + 10)}`,
        `  lease_ms: ${options.leaseMs}`,
        '  retry_base_ms: 100',
        '  retry_max_ms: 1000',
        `  synchronous: ${options.synchronous}`,
        'infrastructure_system:',
        '  distributed_simulation:',
        '    agent_runner_concurrency: 64',
        '  llm_orchestration:',
        '    caching:',
        '      enabled: false',
        `      cache_path: ${join(home, 'llm_cache.db')}`,
        '  performance_monitoring:',
        `    export_path: ${join(home, 'performance_logs')}`,
        'logging:',
        '  level: info',
        '',
      ].join('\n'),
    )

    let starts = 0
    let serve: Subprocess<'ignore', 'pipe', any> | undefined
    let serveUrl: string | undefined
    const startServe = async () => {
      starts++
      const logFile = join(home, 'chaos-logs', `serve-${String(starts).padStart(3, '0')}.log`)
      const proc = Bun.spawn(
        [
          process.execPath,
          '--no-env-file',
          join(options.root, 'commands/index.ts'),
          'serve',
          '--port',
          '0',
          '--json',
          '--home',
          home,
          '--config',
          configFile,
        ],
        {
          cwd: options.root,
          env: childEnv(),
          stdin: 'ignore',
          stdout: 'pipe',
          stderr: Bun.file(logFile),
        },
      )
      children.add(proc)
      serve = proc
      tellDouble(`serve ${proc.pid}`)
      proc.exited.then(() => tellDouble(`gone ${proc.pid}`))
      const printed = await firstJson<{ url?: unknown; error?: { message?: string } }>(proc, `orch serve (start ${starts})`, 30_000)
      if (typeof printed.url !== 'string') {
        throw new Error(
          `orch serve (start ${starts}) did not start: ${printed.error?.message ?? JSON.stringify(printed)} (log: ${logFile})`,
        )
      }
      serveUrl = printed.url
      return printed.url
    }

    // --- the clients: unique prompts; every 2xx remembered by prompt (the id too, when the body arrived)
    const accepted = new Map<string, string | null>()
    let submitErrors = 0
    let submitRefused = 0
    let submitting = true
    let sequence = 0
    const submitter = async () => {
      while (submitting) {
        const url = serveUrl
        if (url === undefined) {
          await Bun.sleep(10)
          continue
        }
        const prompt = `chaos seed ${options.seed} task ${++sequence}`
        try {
          const response = await fetch(`${url}/queue/submit`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ type: 'generate', model: 'llama3.2', payload: { prompt } }),
            signal: AbortSignal.timeout(10_000),
          })
          if (response.status >= 200 && response.status < 300) {
            accepted.set(prompt, null)
            const body = (await response.json().catch(() => undefined)) as { id?: string } | undefined
            if (typeof body?.id === 'string') accepted.set(prompt, body.id)
          } else {
            submitRefused++
            await response.body?.cancel()
          }
        } catch {
          submitErrors++
        }
        await Bun.sleep(options.submitGapMs)
      }
    }

    // --- per-task bookkeeping across kills
    const killsRunningAt = new Map<string, number>()
    /** The highest call id at the snapshot that first saw the task done: any later call of it is a rerun. */
    const doneBaseline = new Map<string, number>()
    let integrityFailures = 0
    let runningAtKills = 0
    let killsWithRunning = 0
    let cutCallsAtKills = 0
    let cutNotRunning = 0
    const cutNotRunningExamples: string[] = []
    const integrityExamples: string[] = []

    const snapshot = (label: string) => {
      let snap: DbSnapshot
      try {
        snap = readState(dbPath)
      } catch (error) {
        integrityFailures++
        integrityExamples.push(`${label}: ${(error as Error).message}`)
        return undefined
      }
      if (snap.integrity !== 'ok') {
        integrityFailures++
        integrityExamples.push(`${label}: ${snap.integrity}`)
      }
      // The counts the queue keeps commit with the changes they count: a kill leaves them true.
      const mismatches = countMismatches(snap)
      if (mismatches.length > 0) {
        integrityFailures++
        integrityExamples.push(`${label}: task counts ${mismatches.join('; ')}`)
      }
      const baseline = maxCallId()
      for (const row of snap.rows) {
        if (row.prompt !== null && row.state === 'done' && !doneBaseline.has(row.prompt)) doneBaseline.set(row.prompt, baseline)
      }
      return snap
    }

    const clients = Array.from({ length: options.submitters }, () => submitter())
    for (let cycle = 1; cycle <= options.cycles; cycle++) {
      const acceptedBefore = accepted.size
      const t0 = performance.now()
      await startServe()
      const startMs = performance.now() - t0
      const upMs = Math.round(options.minUpMs + random() * (options.maxUpMs - options.minUpMs))
      await Bun.sleep(upMs)
      await pollCalls()
      const openBefore = new Set([...calls.values()].filter((c) => c.ended_at === null).map((c) => c.id))
      const killedAt = doubleNow
      serveUrl = undefined
      serve?.kill('SIGKILL')
      await serve?.exited
      await settleDouble()
      // Calls the kill cut off: open just before it, ended without an answer after it.
      const cutCalls = [...calls.values()].filter((c) => openBefore.has(c.id) && c.aborted && (c.ended_at ?? 0) >= killedAt)
      const cut = cutCalls.length
      cutCallsAtKills += cut
      const snap = snapshot(`after kill ${cycle}`)
      const running = snap?.rows.filter((r) => r.state === 'running') ?? []
      const runningPrompts = new Set(running.map((r) => r.prompt))
      for (const call of cutCalls) {
        if (snap && !runningPrompts.has(call.prompt)) {
          cutNotRunning++
          if (cutNotRunningExamples.length < 5) cutNotRunningExamples.push(`kill ${cycle}: ${call.prompt}`)
        }
      }
      for (const row of running) if (row.prompt !== null) killsRunningAt.set(row.prompt, (killsRunningAt.get(row.prompt) ?? 0) + 1)
      runningAtKills += running.length
      if (running.length > 0) killsWithRunning++
      const done = snap?.rows.filter((r) => r.state === 'done').length ?? 0
      log(
        `cycle ${cycle}/${options.cycles}: started in ${Math.round(startMs)} ms, killed after ${upMs} ms with ${running.length} running ` +
          `(${cut} calls cut), +${accepted.size - acceptedBefore} accepted (${accepted.size} total), ${done} done, ` +
          `integrity ${snap?.integrity ?? 'unreadable'}`,
      )
    }

    // --- the last start: no more submissions, everything drains, a clean stop
    await startServe()
    submitting = false
    await Promise.all(clients)
    const drainStart = performance.now()
    let drained = false
    while (performance.now() - drainStart < options.drainTimeoutMs && serve?.exitCode === null) {
      try {
        const stats = (await (await fetch(`${serveUrl}/stats`)).json()) as { tasks?: Record<string, number> }
        if (stats.tasks && (stats.tasks.queued ?? 0) === 0 && (stats.tasks.running ?? 0) === 0) {
          drained = true
          break
        }
      } catch {
        // answered next time
      }
      await Bun.sleep(100)
    }
    const drainMs = Math.round(performance.now() - drainStart)
    serveUrl = undefined
    serve?.kill('SIGTERM')
    const stopped = await Promise.race([serve?.exited, Bun.sleep(15_000).then(() => 'timeout' as const)])
    if (stopped === 'timeout') serve?.kill('SIGKILL')
    await serve?.exited
    await settleDouble()
    const final = snapshot('final')
    log(`drain: ${drained ? 'done' : 'NOT done'} in ${drainMs} ms; final integrity ${final?.integrity ?? 'unreadable'}`)

    // --- the verdict
    const examples: Record<string, string[]> = {}
    const note = (kind: string, text: string) => {
      const list = examples[kind] ?? []
      examples[kind] = list
      if (list.length < 5) list.push(text)
    }
    if (integrityExamples.length > 0) examples.integrity = integrityExamples.slice(0, 5)
    if (cutNotRunningExamples.length > 0) examples.cut_not_running = cutNotRunningExamples

    const byPrompt = new Map<string, DbSnapshot['rows']>()
    for (const row of final?.rows ?? []) {
      if (row.prompt === null) continue
      const list = byPrompt.get(row.prompt) ?? []
      list.push(row)
      byPrompt.set(row.prompt, list)
    }
    const callsByPrompt = new Map<string, DoubleCall[]>()
    for (const call of calls.values()) {
      if (call.prompt === null) continue
      const list = callsByPrompt.get(call.prompt) ?? []
      list.push(call)
      callsByPrompt.set(call.prompt, list)
    }

    const finalStates: Record<string, number> = {}
    for (const row of final?.rows ?? []) finalStates[row.state] = (finalStates[row.state] ?? 0) + 1

    let lost = 0
    let idMismatches = 0
    for (const [prompt, id] of accepted) {
      const rows = byPrompt.get(prompt) ?? []
      const row = rows[0]
      if (row?.state !== 'done') {
        lost++
        note('lost', `${prompt}: ${row ? `state ${row.state}` : 'not in state.db'} (id ${id ?? 'unknown'})`)
      }
      if (row && id !== null && !rows.some((r) => r.id === id)) {
        idMismatches++
        note('id_mismatch', `${prompt}: answered ${id}, stored ${rows.map((r) => r.id).join(', ')}`)
      }
    }

    let duplicatePrompts = 0
    let rerunFinished = 0
    let extraRuns = 0
    let overAllowance = 0
    let over2 = 0
    let maxRuns = 0
    let doneWithoutRun = 0
    let badResults = 0
    let unacknowledged = 0
    for (const [prompt, rows] of byPrompt) {
      if (rows.length > 1) {
        duplicatePrompts++
        note('duplicate_prompt', `${prompt}: ${rows.length} rows`)
      }
      if (!accepted.has(prompt)) unacknowledged++
      const row = rows[0] as DbSnapshot['rows'][number]
      const mine = callsByPrompt.get(prompt) ?? []
      const runs = mine.length
      maxRuns = Math.max(maxRuns, runs)
      extraRuns += Math.max(0, runs - 1)
      const allowance = 1 + (killsRunningAt.get(prompt) ?? 0)
      if (runs > allowance) {
        overAllowance++
        note('over_allowance', `${prompt}: ${runs} runs, running at ${allowance - 1} kill(s)`)
      }
      if (runs > 2) {
        over2++
        note('over_2_runs', `${prompt}: ${runs} runs, running at ${allowance - 1} kill(s)`)
      }
      if (row.state === 'done') {
        const completed = mine.filter((c) => c.status === 200 && !c.aborted).length
        if (completed === 0) {
          doneWithoutRun++
          note('done_without_run', `${prompt}: done, but no completed call reached the double`)
        }
        if (row.response !== fake.reply) {
          badResults++
          note('bad_result', `${prompt}: result ${JSON.stringify(row.response)}`)
        }
        const baseline = doneBaseline.get(prompt) ?? Number.POSITIVE_INFINITY
        const finishedAt = row.finished_at ?? Number.POSITIVE_INFINITY
        const reruns = mine.filter((c) => c.id > baseline || c.started_at + epochOffset > finishedAt + 5).length
        if (reruns > 0) {
          rerunFinished += reruns
          note('rerun_finished', `${prompt}: ${reruns} call(s) after it was done (${runs} in all)`)
        }
      }
    }
    // Calls for prompts that are in no row at all: the double ran something serve does not know.
    for (const prompt of callsByPrompt.keys()) {
      if (!byPrompt.has(prompt)) note('unknown_calls', `${prompt}: calls for a task not in state.db`)
    }

    const completedCalls = [...calls.values()].filter((c) => c.status === 200 && !c.aborted).length
    const ok =
      lost === 0 &&
      rerunFinished === 0 &&
      overAllowance === 0 &&
      integrityFailures === 0 &&
      doneWithoutRun === 0 &&
      duplicatePrompts === 0 &&
      idMismatches === 0 &&
      badResults === 0 &&
      drained &&
      final !== undefined &&
      accepted.size > 0
    result = {
      cycles: options.cycles,
      accepted: accepted.size,
      lost,
      rerun_finished: rerunFinished,
      extra_runs: extraRuns,
      integrity_failures: integrityFailures,
      over_allowance: overAllowance,
      tasks_over_2_runs: over2,
      max_runs: maxRuns,
      done_without_run: doneWithoutRun,
      tasks_in_db: final?.rows.length ?? 0,
      unacknowledged_in_db: unacknowledged,
      duplicate_prompts: duplicatePrompts,
      id_mismatches: idMismatches,
      bad_results: badResults,
      final_states: finalStates,
      model_calls: calls.size,
      completed_calls: completedCalls,
      running_at_kills: runningAtKills,
      kills_with_running: killsWithRunning,
      max_kills_running_at: Math.max(0, ...killsRunningAt.values()),
      cut_calls_at_kills: cutCallsAtKills,
      cut_not_running: cutNotRunning,
      submit_errors: submitErrors,
      submit_refused: submitRefused,
      drained,
      drain_ms: drainMs,
      wall_ms: Math.round(performance.now() - wallStart),
      seed: options.seed,
      home,
      pids: [...children].map((child) => child.pid),
      ok,
      examples,
    }
    double.kill('SIGTERM')
    await Promise.race([double.exited, Bun.sleep(3000)])
    return result
  } finally {
    killAll()
    await Promise.all([...children].map((child) => child.exited))
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    process.off('exit', killAll)
    if (ownHome && !options.keep && result?.ok) rmSync(home, { recursive: true, force: true })
    else log(`home kept: ${home}`)
  }
}

// ---------------------------------------------------------------------------------------------------------
// the command

export function parseOptions(argv: string[]): LoopOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      cycles: { type: 'string', default: '10' },
      seed: { type: 'string', default: '1' },
      home: { type: 'string' },
      keep: { type: 'boolean', default: false },
      root: { type: 'string', default: REPO },
      'min-up-ms': { type: 'string', default: '500' },
      'max-up-ms': { type: 'string', default: '1500' },
      submitters: { type: 'string', default: '2' },
      'submit-gap-ms': { type: 'string', default: '40' },
      concurrency: { type: 'string', default: '8' },
      'token-delay-ms': { type: 'string', default: '20' },
      tokens: { type: 'string', default: '8' },
      'max-stalled': { type: 'string', default: '1000' },
      'lease-ms': { type: 'string', default: '5000' },
      synchronous: { type: 'string', default: 'FULL' },
      'drain-timeout-ms': { type: 'string', default: '60000' },
      help: { type: 'boolean', default: false },
    },
  })
  if (values.help) return 'help'
  const int = (name: keyof typeof values, min: number) => {
    const n = Number(values[name])
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name}: expected an integer >= ${min}, got "${values[name]}"`)
    return n
  }
  const synchronous = String(values.synchronous).toUpperCase()
  if (synchronous !== 'FULL' && synchronous !== 'NORMAL') throw new Error(`--synchronous: FULL or NORMAL, got "${values.synchronous}"`)
  const options: LoopOptions = {
    cycles: int('cycles', 1),
    seed: int('seed', 0),
    home: values.home,
    keep: values.keep === true,
    root: resolve(String(values.root)),
    minUpMs: int('min-up-ms', 0),
    maxUpMs: int('max-up-ms', 0),
    submitters: int('submitters', 1),
    submitGapMs: int('submit-gap-ms', 0),
    concurrency: int('concurrency', 1),
    tokenDelayMs: int('token-delay-ms', 0),
    tokens: int('tokens', 1),
    maxStalled: int('max-stalled', 0),
    leaseMs: int('lease-ms', 100),
    synchronous,
    drainTimeoutMs: int('drain-timeout-ms', 1000),
  }
  if (options.maxUpMs < options.minUpMs) throw new Error('--max-up-ms: must not be below --min-up-ms')
  if (!existsSync(join(options.root, 'commands/index.ts'))) throw new Error(`--root: no commands/index.ts under ${options.root}`)
  return options
}

if (import.meta.main) {
  let options: LoopOptions | 'help'
  try {
    options = parseOptions(Bun.argv.slice(2))
  } catch (error) {
    process.stderr.write(`error: ${(error as Error).message}\n${HELP}`)
    process.exit(2)
  }
  if (options === 'help') {
    process.stdout.write(HELP)
    process.exit(0)
  }
  try {
    const result = await runKillLoop(options)
    process.stdout.write(`${JSON.stringify(result)}\n`)
    process.exit(result.ok ? 0 : 1)
  } catch (error) {
    process.stderr.write(`error: ${(error as Error).stack ?? error}\n`)
    process.stdout.write(`${JSON.stringify({ cycles: options.cycles, error: (error as Error).message, ok: false })}\n`)
    process.exit(1)
  }
}
