/**
 * `orch batch` through the real CLI, in a temp working directory holding Data/Inputs/<batch>/*.json. Most
 * specs use a stub `engine_command` so they test the runner, not the scores; one runs the built-in engine.
 */
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { cpSync, existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT, runCli, spawnCli, tempDir } from '../helpers/cli.ts'

const STUB_ENGINE = `
const dir = process.argv[2]
console.log(JSON.stringify({ metrics: { 'stub.metric': { dir } }, summary: { scored_metrics: 1, overall_score: 4 } }))
`

let tmp: ReturnType<typeof tempDir>

function batch(name: string, mtimeSec: number): string {
  const dir = join(tmp.path, 'Data', 'Inputs', name)
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'lb_performance.json'), '{"load_balancers": []}')
  utimesSync(dir, mtimeSec, mtimeSec)
  return dir
}

const cli = (...args: string[]) => runCli(args, { cwd: tmp.path, env: { ORCH_HOME: join(tmp.path, '.orch') } })

beforeEach(() => {
  tmp = tempDir('orch-batch-e2e-')
  writeFileSync(join(tmp.path, 'stub-engine.ts'), STUB_ENGINE)
  const config = { batch: { engine_command: [process.execPath, join(tmp.path, 'stub-engine.ts')] } }
  writeFileSync(join(tmp.path, 'orch.json'), JSON.stringify(config))
})

afterEach(() => tmp.cleanup())

describe('orch batch', () => {
  test('tick processes one batch per call, newest first, then nothing', async () => {
    batch('Old', 1_000_000)
    batch('New', 2_000_000)
    const first = await cli('batch', 'tick')
    expect(first.code).toBe(0)
    expect(first.stderr).toContain('[runner] subdirs: ["New","Old"]')
    expect(first.stderr).toContain('pending candidates: ["New","Old"]')
    const result = JSON.parse(readFileSync(join(tmp.path, 'Data', 'Outputs', 'New', 'result.json'), 'utf8'))
    expect(result.metrics).toBeDefined()
    expect(result.summary.scored_metrics).toBeGreaterThan(0)
    expect(existsSync(join(tmp.path, 'Data', 'Outputs', 'Old'))).toBe(false)

    const second = await cli('batch', 'tick', '--json')
    expect(second.code).toBe(0)
    expect(second.json().batch).toBe('Old')
    expect(second.stderr).toContain('skip New: already processed')

    const third = await cli('batch', 'tick', '--json')
    expect(third.code).toBe(0)
    expect(third.json().batch).toBeNull()
  })

  test('two racing ticks process a batch once', async () => {
    batch('Only', 1_000_000)
    const [a, b] = await Promise.all([cli('batch', 'tick', '--json'), cli('batch', 'tick', '--json')])
    expect([a.code, b.code]).toEqual([0, 0])
    expect([a.json().batch, b.json().batch].filter(Boolean)).toEqual(['Only'])
  })

  test('status lists pending, locked and processed; reset allows a re-run', async () => {
    batch('Done', 2_000_000)
    batch('Waiting', 1_000_000)
    const locked = batch('Busy', 500_000)
    writeFileSync(join(locked, '.lock'), '')
    expect((await cli('batch', 'tick')).code).toBe(0)

    const status = (await cli('batch', 'status', '--json')).json()
    expect(status.pending).toEqual(['Waiting'])
    expect(status.locked).toEqual(['Busy'])
    expect(status.processed.map((p: { name: string }) => p.name)).toEqual(['Done'])
    expect(status.processed[0].summary.scored_metrics).toBeGreaterThan(0)

    expect((await cli('batch', 'reset', 'Done')).code).toBe(0)
    expect((await cli('batch', 'tick', '--json')).json().batch).toBe('Done')
    expect((await cli('batch', 'reset', '../etc')).code).toBe(2)
    expect((await cli('batch', 'reset', 'Never')).code).toBe(1)
  })

  test('run <DIR> --json prints the result and writes it under outputs_root', async () => {
    const dir = batch('Sample1', 1_000_000)
    const res = await cli('batch', 'run', dir, '--json')
    expect(res.code).toBe(0)
    expect(res.json().summary.scored_metrics).toBeGreaterThan(0)
    expect(existsSync(join(tmp.path, 'Data', 'Outputs', 'Sample1', 'result.json'))).toBe(true)
  })

  test('run --out writes there; an engine that fails exits 1', async () => {
    const dir = batch('Sample1', 1_000_000)
    expect((await cli('batch', 'run', dir, '--out', 'here.json')).code).toBe(0)
    expect(JSON.parse(readFileSync(join(tmp.path, 'here.json'), 'utf8')).metrics).toBeDefined()
    writeFileSync(join(tmp.path, 'stub-engine.ts'), 'process.exit(3)')
    const failed = await cli('batch', 'run', dir, '--json')
    expect(failed.code).toBe(1)
    expect(failed.json().error.code).toBe('E_BATCH_ENGINE')
    expect(failed.stderr).toContain('exited with 3')
  })

  test('run with the built-in engine', async () => {
    writeFileSync(join(tmp.path, 'orch.json'), '{}')
    const dir = join(tmp.path, 'Data', 'Inputs', 'Sample1')
    mkdirSync(dir, { recursive: true })
    const lb = {
      load_balancers: [{ id: 'alb-1', lat_p95: 120, lat_p99: 240, r5xx: 0.002, unhealthy_minutes: 1, requests: 1800000 }],
      slo: { p95_ms: 200, p99_ms: 400, '5xx_rate_max': 0.005 },
    }
    writeFileSync(join(dir, 'lb_performance.json'), JSON.stringify(lb))
    const res = await cli('batch', 'run', dir, '--json')
    expect(res.code).toBe(0)
    const result = res.json()
    expect(result.metrics).toBeDefined()
    expect(result.summary.scored_metrics).toBeGreaterThan(0)
  })

  test('a stale .lock: status marks it and names the file; doctor warns with the fix; the batch stays skipped', async () => {
    const dir = batch('Stuck', 1_000_000)
    const lock = join(dir, '.lock')
    writeFileSync(lock, JSON.stringify({ pid: 999999, locked_at: '2026-01-01T00:00:00.000Z' }))
    const twoHoursAgo = Date.now() / 1000 - 7200
    utimesSync(lock, twoHoursAgo, twoHoursAgo)
    const fresh = join(batch('Busy', 900_000), '.lock')
    writeFileSync(fresh, '')

    const status = (await cli('batch', 'status', '--json')).json()
    expect(status.locked.sort()).toEqual(['Busy', 'Stuck'])
    expect(status.stale_lock_seconds).toBe(3600)
    expect(status.locks.map((l: { name: string; stale: boolean; pid: number | null }) => [l.name, l.stale, l.pid])).toEqual([
      ['Busy', false, null],
      ['Stuck', true, 999999],
    ])
    const text = await cli('batch', 'status')
    expect(text.stdout).toContain('Stuck (STALE, 2h 00m, pid 999999)')
    expect(text.stdout).toContain(`remove ${lock}`)

    // A larger stale_lock_seconds (here from the environment) makes the same lock not stale.
    const relaxed = await runCli(['batch', 'status', '--json'], {
      cwd: tmp.path,
      env: { ORCH_HOME: join(tmp.path, '.orch'), ORCH_BATCH_STALE_LOCK_SECONDS: '86400' },
    })
    expect(relaxed.json().locks.some((l: { stale: boolean }) => l.stale)).toBe(false)

    const doctor = (await cli('doctor', '--json')).json()
    const findings = doctor.findings.filter((f: { id: string }) => f.id === 'batch.locks')
    expect(findings).toHaveLength(1)
    expect(findings[0].status).toBe('warning')
    expect(findings[0].detail).toContain('Stuck: .lock is 2h 00m old')
    expect(findings[0].fix).toContain(`rm ${lock}`)

    expect((await cli('batch', 'tick', '--json')).json().batch).toBeNull()
    expect(existsSync(lock)).toBe(true)
  })

  test('an input file over batch.max_input_bytes is refused with its size; the rest of the batch is scored', async () => {
    writeFileSync(join(tmp.path, 'orch.json'), JSON.stringify({ batch: { max_input_bytes: 4096 } }))
    const dir = join(tmp.path, 'Data', 'Inputs', 'Mixed')
    mkdirSync(dir, { recursive: true })
    cpSync(join(ROOT, 'examples', 'Inputs', 'Sample1'), dir, { recursive: true })
    const huge = { resources: Array.from({ length: 100 }, (_, i) => ({ id: `i-${i}`, tags: { owner: 'team', env: 'prod' } })) }
    writeFileSync(join(dir, 'tagging_coverage.json'), JSON.stringify(huge))
    const res = await cli('batch', 'run', dir, '--json')
    expect(res.code).toBe(0)
    const result = res.json()
    expect(result.summary.scored_metrics).toBe(2)
    expect(result.metrics['tagging.coverage'].error).toMatch(
      /^tagging_coverage\.json is 0\.0 MiB \(\d+ bytes\), over batch\.max_input_bytes \(4096\); refused unread$/,
    )

    // Every file too big: nothing could be scored, so the batch fails (exit 1) and says why.
    writeFileSync(join(tmp.path, 'orch.json'), JSON.stringify({ batch: { max_input_bytes: 10 } }))
    const none = await cli('batch', 'run', dir, '--json')
    expect(none.code).toBe(1)
    expect(none.json().error.message).toContain('no metric could be scored')
  })

  test('schedule --all drains every pending batch with [n/N] progress, then waits; Ctrl-C exits 0', async () => {
    batch('A', 1_000_000)
    batch('B', 3_000_000)
    batch('C', 2_000_000)
    const proc = spawnCli(['batch', 'schedule', '--all', '--interval', '3600'], {
      cwd: tmp.path,
      env: { ORCH_HOME: join(tmp.path, '.orch') },
    })
    const reader = proc.stdout.pipeThrough(new TextDecoderStream()).getReader()
    let out = ''
    const deadline = Date.now() + 15_000
    while (!out.includes('tick 1:') && Date.now() < deadline) {
      const chunk = await reader.read()
      if (chunk.done) break
      out += chunk.value
    }
    proc.kill('SIGINT')
    expect(await proc.exited).toBe(0)
    const lines = out.trim().split('\n')
    expect(lines.map((l) => l.split('  ')[0])).toEqual(['[1/3] B', '[2/3] C', '[3/3] A', expect.stringMatching(/^tick 1: 3 batch/)])
    expect(lines[0]).toContain(join(tmp.path, 'Data', 'Outputs', 'B', 'result.json'))
    expect(lines[3]).toMatch(/^tick 1: 3 batch\(es\) processed, 0 failed, in \d+\.\d s; next tick at \d\d:\d\d:\d\d UTC$/)
    for (const name of ['A', 'B', 'C']) expect(existsSync(join(tmp.path, 'Data', 'Outputs', name, 'result.json'))).toBe(true)
  })

  test('schedule --json prints one JSON line per batch and per tick', async () => {
    batch('Only', 1_000_000)
    const proc = spawnCli(['batch', 'schedule', '--json', '--interval', '3600'], {
      cwd: tmp.path,
      env: { ORCH_HOME: join(tmp.path, '.orch') },
    })
    const reader = proc.stdout.pipeThrough(new TextDecoderStream()).getReader()
    let out = ''
    const deadline = Date.now() + 15_000
    while (!out.includes('"event":"tick"') && Date.now() < deadline) {
      const chunk = await reader.read()
      if (chunk.done) break
      out += chunk.value
    }
    proc.kill('SIGINT')
    expect(await proc.exited).toBe(0)
    const events = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(events.map((e) => e.event)).toEqual(['batch', 'tick'])
    expect(events[0]).toMatchObject({ tick: 1, done: 1, total: 1, exit_code: 0, batch: 'Only', error: null })
    expect(events[1]).toMatchObject({ tick: 1, processed: 1, failed: 0 })
  })

  test('exit 2 when the result cannot be written (outputs_root is blocked by a file), for tick and for run', async () => {
    writeFileSync(join(tmp.path, 'Data-blocked'), 'a file, not a folder')
    const config = JSON.parse(readFileSync(join(tmp.path, 'orch.json'), 'utf8'))
    writeFileSync(join(tmp.path, 'orch.json'), JSON.stringify({ batch: { ...config.batch, outputs_root: 'Data-blocked/Outputs' } }))
    const dir = batch('Blocked', 1_000_000)
    const ticked = await cli('batch', 'tick', '--json')
    expect(ticked.code).toBe(2)
    expect(ticked.json()).toMatchObject({ exit_code: 2, batch: 'Blocked', result_path: null })
    expect(ticked.json().error).toContain(join(tmp.path, 'Data-blocked', 'Outputs', 'Blocked', 'result.json'))
    expect(existsSync(join(dir, '.lock'))).toBe(false)

    const ran = await cli('batch', 'run', dir, '--out', join(tmp.path, 'Data-blocked', 'r.json'))
    expect(ran.code).toBe(2)
    expect(ran.stderr).toContain('cannot write')
  })
})
