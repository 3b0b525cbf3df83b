/**
 * `orch batch` through the real CLI, in a temp working directory holding Data/Inputs/<batch>/*.json. Most
 * specs use a stub `engine_command` so they test the runner, not the scores; one runs the built-in engine.
 */
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
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

  test('an invalid-JSON input and a folder in place of a file: every documented field, score null, and the summary lists them', async () => {
    writeFileSync(join(tmp.path, 'orch.json'), '{}')
    const dir = join(tmp.path, 'Data', 'Inputs', 'Broken')
    mkdirSync(dir, { recursive: true })
    cpSync(join(ROOT, 'examples', 'Inputs', 'Sample1'), dir, { recursive: true })
    writeFileSync(join(dir, 'tagging_coverage.json'), '{ "resources": [')
    mkdirSync(join(dir, 'security_iam_risk.json'))

    const ticked = await cli('batch', 'tick')
    expect(ticked.code).toBe(0)
    expect(ticked.stdout).toContain(
      'Broken: score 5.0, 2 metric(s); 2 not scored: tagging.coverage (tagging_coverage.json is not valid JSON',
    )
    expect(ticked.stdout).toContain('security.iam_risk (security_iam_risk.json is not a regular file)')

    const result = JSON.parse(readFileSync(join(tmp.path, 'Data', 'Outputs', 'Broken', 'result.json'), 'utf8'))
    // The fields docs/batch-metrics.md promises for every metric result.
    const doc = readFileSync(join(ROOT, 'docs', 'batch-metrics.md'), 'utf8')
    const documented = (doc.match(/pure function from the parsed file to `\{ ([^}]+) \}`/)?.[1] ?? '').split(', ')
    expect(documented).toEqual(['metric_id', 'score', 'confidence', 'rationale', 'evidence', 'gaps'])
    const invalid = result.metrics['tagging.coverage']
    const notFile = result.metrics['security.iam_risk']
    for (const metric of [invalid, notFile, result.metrics['lb.performance']]) {
      for (const field of [...documented, 'rationale_source']) expect(metric).toHaveProperty(field)
    }
    expect(invalid).toMatchObject({ metric_id: 'tagging.coverage', score: null, confidence: 0, evidence: {}, rationale_source: 'rules' })
    expect(invalid.error).toStartWith('tagging_coverage.json is not valid JSON: ')
    expect(invalid.gaps).toEqual([invalid.error])
    expect(invalid.rationale).toBe(`Not scored: ${invalid.error}.`)
    expect(notFile).toMatchObject({
      metric_id: 'security.iam_risk',
      score: null,
      confidence: 0,
      evidence: {},
      gaps: ['security_iam_risk.json is not a regular file'],
      error: 'security_iam_risk.json is not a regular file',
    })
    expect(result.summary).toMatchObject({ scored_metrics: 2, overall_score: 5, unscored_metrics: 2 })
    expect(result.summary.unscored).toEqual([
      { metric_id: 'tagging.coverage', reason: invalid.error },
      { metric_id: 'security.iam_risk', reason: 'security_iam_risk.json is not a regular file' },
    ])

    // --json carries the same summary, and status shows it beside the processed batch.
    const ran = await cli('batch', 'run', dir, '--out', 'again.json', '--json')
    expect(ran.code).toBe(0)
    expect(ran.json().summary.unscored).toEqual(result.summary.unscored)
    const status = await cli('batch', 'status')
    expect(status.stdout).toMatch(/Broken .* score 5\.0, 2 metric\(s\); 2 not scored: tagging\.coverage/)
  })

  test('an engine_command that reports a metric error: completed to the documented shape and listed in the summary', async () => {
    const engine = `console.log(JSON.stringify({
  metrics: {
    'lb.performance': { metric_id: 'lb.performance', score: 4, confidence: 1, rationale: 'ok', evidence: {}, gaps: [] },
    'db.utilization': { error: 'db_utilization.json: unreadable' },
  },
  summary: { scored_metrics: 1, overall_score: 4 },
}))`
    writeFileSync(join(tmp.path, 'stub-engine.ts'), engine)
    batch('External', 1_000_000)
    const ticked = await cli('batch', 'tick', '--json')
    expect(ticked.code).toBe(0)
    const result = JSON.parse(readFileSync(join(tmp.path, 'Data', 'Outputs', 'External', 'result.json'), 'utf8'))
    expect(result.metrics['db.utilization']).toEqual({
      metric_id: 'db.utilization',
      score: null,
      confidence: 0,
      rationale: 'Not scored: db_utilization.json: unreadable.',
      evidence: {},
      gaps: ['db_utilization.json: unreadable'],
      rationale_source: 'rules',
      error: 'db_utilization.json: unreadable',
    })
    expect(result.metrics['lb.performance']).toEqual({
      metric_id: 'lb.performance',
      score: 4,
      confidence: 1,
      rationale: 'ok',
      evidence: {},
      gaps: [],
    })
    expect(result.summary).toEqual({
      scored_metrics: 1,
      overall_score: 4,
      unscored_metrics: 1,
      unscored: [{ metric_id: 'db.utilization', reason: 'db_utilization.json: unreadable' }],
    })
    expect(ticked.json().result.summary.unscored_metrics).toBe(1)
  })

  test('a missing inputs_root: status, tick and schedule say so, with the resolved path, and exit 2', async () => {
    const resolved = join(tmp.path, 'Nowhere', 'Inputs')
    const message = `inputs_root Nowhere/Inputs (resolved ${resolved}) does not exist: create it, or set batch.inputs_root (ORCH_BATCH_INPUTS_ROOT)`
    const env = { ORCH_HOME: join(tmp.path, '.orch'), ORCH_BATCH_INPUTS_ROOT: 'Nowhere/Inputs' }
    const missing = (...args: string[]) => runCli(args, { cwd: tmp.path, env })

    for (const command of ['status', 'tick', 'schedule']) {
      const text = await missing('batch', command, ...(command === 'schedule' ? ['--interval', '3600'] : []))
      expect([command, text.code]).toEqual([command, 2])
      expect(text.stderr).toContain(`error: ${message}`)
      expect(text.stderr).toContain(`hint: mkdir -p ${resolved}`)
      expect(text.stdout).not.toContain('nothing pending')

      const json = await missing('batch', command, '--json', ...(command === 'schedule' ? ['--interval', '3600'] : []))
      expect(json.code).toBe(2)
      expect(json.json().error).toMatchObject({
        code: 'E_BATCH_INPUTS_ROOT',
        message,
        inputs_root: 'Nowhere/Inputs',
        inputs_root_resolved: resolved,
        inputs_root_exists: false,
      })
    }

    // A file where the folder should be is named as such.
    mkdirSync(join(tmp.path, 'Nowhere'))
    writeFileSync(resolved, 'not a folder')
    const file = await missing('batch', 'status', '--json')
    expect(file.code).toBe(2)
    expect(file.json().error).toMatchObject({ inputs_root_exists: true, inputs_root_is_folder: false })
    expect(file.json().error.message).toContain(`(resolved ${resolved}) is not a folder`)

    // Once the folder is there, an empty root is simply nothing pending.
    rmSync(resolved)
    mkdirSync(resolved)
    const empty = await missing('batch', 'tick')
    expect(empty.code).toBe(0)
    expect(empty.stdout.trim()).toBe('nothing pending')
  })

  test('a running schedule whose inputs_root goes away says so on each tick and keeps going', async () => {
    batch('First', 1_000_000)
    const proc = spawnCli(['batch', 'schedule', '--json', '--interval', '0.2'], {
      cwd: tmp.path,
      env: { ORCH_HOME: join(tmp.path, '.orch') },
    })
    const reader = proc.stdout.pipeThrough(new TextDecoderStream()).getReader()
    let out = ''
    const deadline = Date.now() + 15_000
    const until = async (done: () => boolean) => {
      while (!done() && Date.now() < deadline) {
        const chunk = await reader.read()
        if (chunk.done) break
        out += chunk.value
      }
    }
    await until(() => out.includes('"event":"tick"'))
    rmSync(join(tmp.path, 'Data', 'Inputs'), { recursive: true, force: true })
    await until(() => out.includes('does not exist'))
    proc.kill('SIGINT')
    expect(await proc.exited).toBe(0)
    const ticks = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((e) => e.event === 'tick')
    expect(ticks[0]).toMatchObject({ processed: 1, error: null })
    const missing = ticks.find((t) => t.error !== null)
    expect(missing).toMatchObject({ processed: 0 })
    expect(missing.error).toBe(
      `inputs_root Data/Inputs (resolved ${join(tmp.path, 'Data', 'Inputs')}) does not exist: create it, or set batch.inputs_root (ORCH_BATCH_INPUTS_ROOT)`,
    )
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
