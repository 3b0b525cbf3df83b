/**
 * `orch batch` through the real CLI, in a temp working directory holding Data/Inputs/<batch>/*.json. Most
 * specs use a stub `engine_command` so they test the runner, not the scores; one runs the built-in engine.
 */
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT, runCli, tempDir } from '../helpers/cli.ts'

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

  test.skipIf(!existsSync(join(ROOT, 'src/batch/engine.ts')))('run with the built-in engine', async () => {
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
})
