import { afterAll, describe, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { runCli, tempDir } from '../helpers/cli.ts'

// A cwd without orch.yaml, so the developer's own config cannot change the defaults.
const empty = tempDir('orch-capacity-')
const configured = tempDir('orch-capacity-config-')
writeFileSync(join(configured.path, 'orch.yaml'), 'runtime:\n  ollama:\n    concurrency: 4\n')
afterAll(() => {
  empty.cleanup()
  configured.cleanup()
})

const exampleArgs = ['capacity', '--tasks', '100', '--duration', '0.1', '--concurrency', '2', '--efficiency', '0.8']
const run = (args: string[], cwd = empty.path) => runCli(args, { cwd })

describe('orch capacity', () => {
  test('the worked example as JSON: every figure, inputs included', async () => {
    const result = await run([...exampleArgs, '--json'])
    expect(result.code).toBe(0)
    const out = result.json()
    expect(out).toMatchObject({
      inputs: {
        tasks_per_hour: 100,
        duration_hours: 0.1,
        concurrency: 2,
        concurrency_source: 'flag',
        efficiency: 0.8,
        headroom: 0.3,
        peak: 2,
      },
      required_raw: 6.25,
      required_instances: 7,
      with_headroom_raw: 8.125,
      with_headroom: 9,
      at_peak_raw: 16.25,
      at_peak: 17,
      hardware: { within_table: true, tier: { concurrency: '1-2', cpu_cores: '4-8', ram_gb: 16, vram_gb: 8 }, split: null },
      queueing: { target_wait_seconds: null, recommended_instances: null, service_seconds: 450, offered_load_erlangs: 12.5 },
    })
    const first = out.queueing.candidates[0]
    expect(Object.keys(first).sort()).toEqual(
      ['instances', 'meets_target', 'mean_wait_seconds', 'p95_wait_seconds', 'p_wait', 'servers', 'stable', 'utilisation'].sort(),
    )
    expect(first).toMatchObject({ instances: 7, servers: 14, stable: true })
    expect(first.utilisation).toBeCloseTo(6.25 / 7, 6)
  })

  test('the human report shows the formula with the numbers filled in, headroom, peak, hardware and the table', async () => {
    const result = await run(exampleArgs)
    expect(result.code).toBe(0)
    expect(result.stdout).toContain('100 tasks/h × 0.1 h ÷ (2 × 0.8) = 6.25 → 7 instances')
    expect(result.stdout).toContain('6.25 × (1 + 0.3) = 8.125 → 9 instances')
    expect(result.stdout).toContain('6.25 × 2 × (1 + 0.3) = 16.25 → 17 instances')
    expect(result.stdout).toContain('4-8 CPU cores, 16 GB RAM, 8 GB GPU VRAM')
    expect(result.stdout).toMatch(/instances\s+utilisation\s+P\(wait\)\s+mean wait\s+p95 wait/)
    expect(result.stdout).toMatch(/^\s+7\s+89\.3%/m)
    expect(result.stdout).toContain('Instances (sizing formula, rounded up; see docs/capacity.md)')
    expect(result.stdout).toContain('(hardware table, concurrency 1-2)')
  })

  test('no output names where a rule came from: text, JSON, beyond the table, and --help', async () => {
    const beyond = await run(['capacity', '--tasks', '100', '--duration', '0.1', '--concurrency', '12'])
    expect(beyond.code).toBe(0)
    expect(beyond.stdout).toContain('concurrency 12 is beyond the hardware table (which stops at 8 per instance).')
    const outputs = [beyond, await run(exampleArgs), await run([...exampleArgs, '--json']), await run(['capacity', '--help'])]
    for (const result of outputs) expect(`${result.stdout}${result.stderr}`).not.toMatch(/seed/i)
  })

  test('--target-wait 30s picks the fewest instances whose p95 wait meets it', async () => {
    const json = (await run([...exampleArgs, '--target-wait', '30s', '--json'])).json()
    expect(json.queueing.target_wait_seconds).toBe(30)
    expect(json.queueing.target_statistic).toBe('p95_wait_seconds')
    const pick = json.queueing.recommended_instances
    const rows = new Map<number, any>(json.queueing.candidates.map((r: any) => [r.instances, r]))
    expect(rows.get(pick).p95_wait_seconds).toBeLessThanOrEqual(30)
    expect(rows.get(pick - 1).p95_wait_seconds).toBeGreaterThan(30)
    const text = await run([...exampleArgs, '--target-wait', '30s'])
    expect(text.stdout).toContain(`Target p95 queue wait ≤ 30s: ${pick} instances`)
  })

  test('an unstable row is null in JSON with stable: false', async () => {
    // 140 × 0.1 ÷ (2 × 1) = 7 exactly: seven instances are 100% busy.
    const json = (await run(['capacity', '--tasks', '140', '--duration', '6m', '--concurrency', '2', '--efficiency', '1', '--json'])).json()
    expect(json.queueing.candidates[0]).toMatchObject({ instances: 7, stable: false, mean_wait_seconds: null, p95_wait_seconds: null })
  })

  test('concurrency defaults to runtime.ollama.concurrency from orch.yaml', async () => {
    const result = await run(['capacity', '--tasks', '100', '--duration', '6m', '--json'], configured.path)
    expect(result.code).toBe(0)
    const json = result.json()
    expect(json.inputs).toMatchObject({ concurrency: 4, concurrency_source: 'file' })
    expect(json.required_raw).toBe(3.125)
    expect(json.required_instances).toBe(4)
    expect(json.hardware.tier.concurrency).toBe('3-4')
  })

  test.each([
    [['--efficiency', '1.5'], '--efficiency: expected a number in (0, 1], got "1.5"'],
    [['--tasks', '0'], '--tasks'],
    [['--concurrency', '-2'], '--concurrency'],
    [['--duration', 'soon'], '--duration'],
    [['--target-wait', '0s'], '--target-wait'],
  ])('bad flags %p exit 2, naming the flag', async (bad, message) => {
    const result = await run([...exampleArgs, ...bad])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain(message)
    expect(result.stdout).toBe('')
  })

  test('with --json a bad flag is an error object on stdout', async () => {
    const result = await run(['capacity', '--duration', '6m', '--json'])
    expect(result.code).toBe(2)
    expect(result.json().error.message).toContain('--tasks')
  })

  test('--help shows the definitions and the worked example', async () => {
    const result = await run(['capacity', '--help'])
    expect(result.code).toBe(0)
    expect(result.stdout).toContain('--target-wait')
    expect(result.stdout).toContain('95th-percentile')
    expect(result.stdout).toContain('⌈raw × peak × (1 + headroom)⌉')
    expect(result.stdout).toContain('orch capacity --tasks 100 --duration 0.1 --concurrency 2')
  })
})
