/**
 * The kill -9 chaos loop (scripts/chaos/kill-loop.ts) at 10 short cycles: orch serve is SIGKILLed at
 * seeded random moments while durable tasks are submitted and run, and restarted on the same home. No
 * accepted task may be lost, none finished may run again, each kill may cost a task running at it one more
 * run at most, and state.db must pass integrity_check after every kill. Also: the integrity check itself
 * notices a corrupt file, and every process the loop started is gone when it returns.
 *
 *   bun test test/chaos
 */
import { Database } from 'bun:sqlite'
import { afterAll, describe, expect, test } from 'bun:test'
import { closeSync, openSync, statSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { checkIntegrity, countMismatches, type LoopResult } from '../../scripts/chaos/kill-loop.ts'
import { ROOT, tempDir } from '../helpers/cli.ts'

const SCRIPT = join(ROOT, 'scripts/chaos/kill-loop.ts')

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH'
  }
}

async function runLoop(args: string[], timeoutMs: number) {
  const proc = Bun.spawn([process.execPath, SCRIPT, ...args], {
    cwd: ROOT,
    stdout: 'pipe',
    stderr: 'pipe',
    // SIGTERM, not SIGKILL: the loop stops its own children on it.
    timeout: timeoutMs,
    killSignal: 'SIGTERM',
  })
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  return { stdout, stderr, code }
}

describe('kill -9 loop', () => {
  test('10 cycles: nothing lost, nothing finished runs again, at most one more run per kill, db intact', async () => {
    const { stdout, stderr, code } = await runLoop(['--cycles', '10', '--seed', '7'], 100_000)
    const last = stdout.trim().split('\n').at(-1) ?? ''
    let result: LoopResult
    try {
      result = JSON.parse(last)
    } catch {
      throw new Error(`no JSON last line (exit ${code}):\n${stdout}\nstderr:\n${stderr}`)
    }
    if (code !== 0) console.error(stderr)
    expect(result).toMatchObject({
      cycles: 10,
      lost: 0,
      rerun_finished: 0,
      integrity_failures: 0,
      over_allowance: 0,
      done_without_run: 0,
      duplicate_prompts: 0,
      id_mismatches: 0,
      bad_results: 0,
      drained: true,
      ok: true,
    })
    expect(code).toBe(0)
    expect(result.accepted).toBeGreaterThan(50)
    // The chaos reached something: kills found tasks running, and cut model calls off mid-stream.
    expect(result.kills_with_running).toBeGreaterThanOrEqual(5)
    expect(result.cut_calls_at_kills).toBeGreaterThan(0)
    expect(result.max_runs).toBeLessThanOrEqual(1 + result.max_kills_running_at)
    expect(result.final_states).toEqual({ done: result.tasks_in_db })
    expect(stderr.match(/^cycle \d+\/10: /gm)).toHaveLength(10)
    // No orphaned serve or double.
    expect(result.pids.length).toBe(12) // the double, 10 killed serves, the last one
    expect(result.pids.filter(alive)).toEqual([])
  }, 120_000)

  test('--help answers at once; a bad flag is exit 2', async () => {
    const help = await runLoop(['--help'], 20_000)
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('--cycles N')
    const bad = await runLoop(['--cycles', 'many'], 20_000)
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('--cycles')
  })
})

describe('checkIntegrity', () => {
  const dir = tempDir('orch-chaos-integrity-')
  afterAll(() => dir.cleanup())

  function makeDb(name: string): string {
    const path = join(dir.path, name)
    const db = new Database(path)
    db.run('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)')
    db.run('CREATE INDEX t_v ON t (v)')
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)')
    db.transaction(() => {
      for (let i = 0; i < 2000; i++) insert.run(`value ${i} ${'x'.repeat(i % 50)}`)
    })()
    insert.finalize()
    db.close()
    return path
  }

  test('ok for an intact file, opened read-only', () => {
    const path = makeDb('good.db')
    const before = statSync(path).mtimeMs
    expect(checkIntegrity(path)).toEqual({ ok: true, detail: 'ok' })
    expect(statSync(path).mtimeMs).toBe(before)
  })

  test('a failure for a file with garbage in its pages, and for one that is not there', () => {
    const path = makeDb('bad.db')
    const fd = openSync(path, 'r+')
    const garbage = Buffer.alloc(4096, 0x5a)
    // Pages 3..6 (page size 4096): index and table pages, not the header.
    writeSync(fd, garbage, 0, garbage.length, 3 * 4096)
    writeSync(fd, garbage, 0, garbage.length, 5 * 4096)
    closeSync(fd)
    expect(checkIntegrity(path).ok).toBe(false)
    expect(checkIntegrity(join(dir.path, 'missing.db')).ok).toBe(false)
  })
})

describe('countMismatches', () => {
  test('names each state whose kept count differs from the rows, and nothing when they agree', () => {
    const rows = (states: string[]) => states.map((state, i) => ({ id: `t${i}`, state, prompt: null, finished_at: null, response: null }))
    const snap = {
      integrity: 'ok',
      rows: rows(['done', 'done', 'queued']),
      counts: { queued: 1, running: 0, done: 2, failed: 0, cancelled: 0 },
    }
    expect(countMismatches(snap)).toEqual([])
    expect(countMismatches({ ...snap, counts: { ...snap.counts, done: 3, running: 1 } })).toEqual([
      'done kept 3, rows 2',
      'running kept 1, rows 0',
    ])
    expect(countMismatches({ ...snap, rows: rows(['done', 'done', 'queued', 'failed']) })).toEqual(['failed kept 0, rows 1'])
  })
})
