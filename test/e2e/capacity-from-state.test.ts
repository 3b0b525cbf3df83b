/**
 * `orch capacity --from-state` on the state.db of a real run: a real `orch serve` in front of a fake Ollama
 * whose every call costs 50 ms, 4 slots (backend concurrency 4, agent_runner_concurrency 4), 300 tasks of
 * two models submitted over HTTP. The CLI then measures durations, arrivals, concurrency and efficiency from
 * the file (read-only, while the server runs and after it stopped), and its plan is what plan.ts computes
 * from the inputs it reports.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { FINISHED_IN_WINDOW, UNFINISHED_IN_WINDOW } from '../../src/capacity/measured.ts'
import { type CapacityInput, planCapacity } from '../../src/capacity/plan.ts'
import { stateDbPath } from '../../src/core/home.ts'
import { openDatabase, openStore } from '../../src/store/db.ts'
import { type CliResult, runCli, tempDir } from '../helpers/cli.ts'
import { startTestServe, type TestServe } from '../helpers/serve.ts'

const COST_MS = 50
const SLOTS = 4
const MODELS = { 'llama3.2': 200, 'qwen2.5': 100 } as const
const TOTAL = 300

let t: TestServe
let configFile: string
let whileRunning: CliResult
const work = tempDir('orch-capacity-state-')

const capacity = (args: string[]) => runCli(['capacity', '--from-state', '--home', t.home, '--config', configFile, ...args])

async function submitAll(): Promise<string[]> {
  const bodies = Object.entries(MODELS).flatMap(([model, n]) =>
    Array.from({ length: n }, (_, i) => ({ type: 'generate', model, payload: { prompt: `${model} task ${i}` } })),
  )
  const ids: string[] = []
  // Three bulk requests of 100, a moment apart, so arrivals are not a single instant.
  for (let i = 0; i < bodies.length; i += 100) {
    const r = await t.fetch('/queue/submit', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(bodies.slice(i, i + 100)),
    })
    expect(r.status).toBe(202)
    ids.push(...((await r.json()) as { tasks: Array<{ id: string }> }).tasks.map((x) => x.id))
    await Bun.sleep(100)
  }
  return ids
}

beforeAll(async () => {
  t = await startTestServe({
    fakes: [{ callCostMs: COST_MS, models: Object.keys(MODELS) }],
    concurrency: SLOTS,
    tweak: (c) => {
      c.infrastructure_system.distributed_simulation.agent_runner_concurrency = SLOTS
    },
  })
  // The CLI reads the same backends and runner cap as the server had, from a file.
  configFile = join(work.path, 'orch.yaml')
  writeFileSync(
    configFile,
    [
      'backends:',
      `  - { name: fake0, url: "${t.fakes[0]?.url}", concurrency: ${SLOTS} }`,
      'infrastructure_system:',
      '  distributed_simulation:',
      `    agent_runner_concurrency: ${SLOTS}`,
      '',
    ].join('\n'),
  )
  const ids = await submitAll()
  for (const id of ids) {
    const r = await t.fetch(`/tasks/${id}/wait?timeout=60s`)
    expect(((await r.json()) as { task: { state: string } }).task.state).toBe('done')
  }
  whileRunning = await capacity([])
  await t.server.stop(200)
}, 120_000)

afterAll(async () => {
  await t.stop()
  work.cleanup()
})

/** The plan.ts input from the measured inputs the command reports. */
function inputOf(scope: any): CapacityInput {
  const i = scope.inputs
  return {
    tasksPerHour: i.tasks_per_hour.value,
    durationHours: i.duration_seconds.value / 3600,
    concurrency: i.concurrency.value,
    efficiency: i.efficiency.value,
    headroom: i.headroom.value,
    peak: i.peak.value,
    targetWaitSeconds: i.target_wait_seconds ?? undefined,
  }
}

function expectPlanOf(scope: any): void {
  const plan = planCapacity(inputOf(scope))
  expect(scope.plan).toMatchObject({
    required_raw: plan.requiredRaw,
    required_instances: plan.requiredInstances,
    with_headroom_raw: plan.withHeadroomRaw,
    with_headroom: plan.withHeadroom,
    at_peak_raw: plan.atPeakRaw,
    at_peak: plan.atPeak,
    queueing: { recommended_instances: plan.queueing.recommendedInstances, offered_load_erlangs: plan.queueing.loadErlangs },
  })
  expect(scope.plan.queueing.candidates.map((c: any) => c.instances)).toEqual(plan.queueing.candidates.map((c) => c.instances))
}

describe('orch capacity --from-state on a real run', () => {
  test('while orch serve runs, the read-only read works (WAL) and the text states the rules and where each input came from', () => {
    expect(whileRunning.stderr).toBe('')
    expect(whileRunning.code).toBe(0)
    const out = whileRunning.stdout
    expect(out).toContain(`Capacity from measured data: ${stateDbPath(t.home)}`)
    expect(out).toMatch(/tasks\/h .*300 tasks created over the activity span/)
    expect(out).toMatch(/duration .*mean of 300 done tasks since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/)
    expect(out).toMatch(/mean of 200 done tasks of llama3\.2/)
    expect(out).toMatch(/mean of 100 done tasks of qwen2\.5/)
    expect(out).toContain('fake0 4 (backends[].concurrency)')
    expect(out).toContain('slots = the concurrency of each backend')
    expect(out).toContain('efficiency = slot time in use ÷ slot time')
    expect(out).toContain('Instances (sizing formula, rounded up; see docs/capacity.md)')
  })

  test('--json: durations near the fake’s cost, every task counted, at most 4 at once, efficiency in (0, 1], plan = plan.ts', async () => {
    const r = await capacity(['--json', '--target-wait', '1s'])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const out = r.json()
    const all = out.overall
    expect(all.measured.tasks_created).toBe(TOTAL)
    expect(all.measured.done_tasks).toBe(TOTAL)
    const d = all.measured.duration_seconds
    // Each task is one 50 ms call plus orch's own work; a loaded 2-core machine adds a little, never takes away.
    expect(d.min).toBeGreaterThanOrEqual((COST_MS - 2) / 1000)
    expect(d.p50).toBeLessThan((COST_MS + 100) / 1000)
    expect(d.mean).toBeGreaterThanOrEqual((COST_MS - 1) / 1000)
    expect(d.mean).toBeLessThan((COST_MS + 150) / 1000)
    expect(all.inputs.duration_seconds.value).toBe(d.mean)
    expect(all.measured.concurrency.max).toBeGreaterThanOrEqual(2)
    expect(all.measured.concurrency.max).toBeLessThanOrEqual(SLOTS)
    expect(all.measured.concurrency.average).toBeGreaterThan(0)
    expect(all.measured.slots).toMatchObject({ total: SLOTS, per_instance: SLOTS, instances: 1, runner_cap: SLOTS })
    expect(out.from_state.efficiency).toBeGreaterThan(0)
    expect(out.from_state.efficiency).toBeLessThanOrEqual(1)
    expect(all.inputs.efficiency).toMatchObject({ from: 'measured', value: out.from_state.efficiency })
    expect(all.measured.utilisation).toBeGreaterThan(0)
    expect(all.measured.utilisation).toBeLessThanOrEqual(1)
    // 300 tasks over the activity span: tasks/h is that count over that time.
    expect(all.inputs.tasks_per_hour.value).toBeCloseTo((TOTAL / out.from_state.activity.seconds) * 3600, 6)
    expect(all.inputs.concurrency).toMatchObject({ value: SLOTS, from: 'config' })
    // A span of seconds is shorter than two 1-minute buckets: peak 1, said so.
    expect(all.inputs.peak).toMatchObject({ value: 1, from: 'default' })
    expect(out.from_state.warnings).toEqual([])
    expectPlanOf(all)
    expect(all.plan.inputs.target_wait_seconds).toBe(1)

    expect(out.models.map((m: any) => [m.model, m.measured.done_tasks, m.measured.tasks_created])).toEqual([
      ['llama3.2', 200, 200],
      ['qwen2.5', 100, 100],
    ])
    for (const model of out.models) {
      expect(model.skipped).toBeNull()
      expect(model.measured.duration_seconds.p50).toBeGreaterThanOrEqual((COST_MS - 2) / 1000)
      expect(model.measured.duration_seconds.p50).toBeLessThan((COST_MS + 100) / 1000)
      expect(model.measured.concurrency.max).toBeLessThanOrEqual(SLOTS)
      expectPlanOf(model)
    }
  })

  test('the file is read, never written: the same bytes after; both reads use their index', async () => {
    const file = stateDbPath(t.home)
    const digest = () => createHash('sha256').update(readFileSync(file)).digest('hex')
    const before = digest()
    expect((await capacity(['--json'])).code).toBe(0)
    expect(digest()).toBe(before)
    const store = openDatabase(file, { readonly: true })
    try {
      const plan = (sql: string) => store.all<{ detail: string }>(`EXPLAIN QUERY PLAN ${sql}`, [0, Date.now()]).map((row) => row.detail)
      expect(plan(FINISHED_IN_WINDOW).join('\n')).toMatch(/SEARCH tasks USING INDEX tasks_finished \(finished_at>\? AND finished_at<\?\)/)
      const unfinished = plan(UNFINISHED_IN_WINDOW)
      expect(unfinished.join('\n')).toMatch(/SEARCH tasks USING INDEX tasks_state_created \(state=\? AND created_at>\? AND created_at<\?\)/)
      expect(unfinished.filter((line) => /\bSCAN tasks\b/.test(line))).toEqual([])
    } finally {
      store.close()
    }
  })

  test('flags still apply: --peak, --efficiency, --concurrency and --headroom replace what was measured', async () => {
    const r = await capacity(['--json', '--peak', '3', '--efficiency', '0.5', '--concurrency', '2', '--headroom', '0'])
    expect(r.code).toBe(0)
    const all = r.json().overall
    expect(all.inputs.peak).toMatchObject({ value: 3, from: 'flag', source: '--peak' })
    expect(all.inputs.efficiency).toMatchObject({ value: 0.5, from: 'flag' })
    expect(all.inputs.concurrency).toMatchObject({ value: 2, from: 'flag' })
    expect(all.inputs.headroom).toMatchObject({ value: 0, from: 'flag' })
    expectPlanOf(all)
  })

  test('a window with no task: exit 1, what is missing and how to get it; --tasks with it is a usage error', async () => {
    const empty = await capacity(['--since', '1ms', '--json'])
    expect(empty.code).toBe(1)
    expect(empty.json().error).toMatchObject({ code: 'E_CAPACITY_NO_DATA' })
    expect(empty.stderr).toMatch(/error: no task in .*state\.db since .* \(--since 1ms\): nothing to measure/)
    expect(empty.stderr).toMatch(/hint: .*submit work to orch serve .*widen the window \(--since 7d\)/)
    const both = await capacity(['--tasks', '100'])
    expect(both.code).toBe(2)
    expect(both.stderr).toContain('--tasks: --from-state measures it from the state database')
  })

  test('a state directory with an empty queue, or none at all: exit 1 saying so, and nothing is created', async () => {
    const home = join(work.path, 'fresh')
    openStore(home).close()
    const fresh = await runCli(['capacity', '--from-state', '--home', home])
    expect(fresh.code).toBe(1)
    expect(fresh.stderr).toContain('nothing to measure')
    const missing = join(work.path, 'missing')
    const none = await runCli(['capacity', '--from-state', '--home', missing])
    expect(none.code).toBe(1)
    expect(none.stderr).toContain(`no state database at ${stateDbPath(missing)}`)
    expect(await Bun.file(stateDbPath(missing)).exists()).toBe(false)
  })

  test('with the task queue in Redis there is no state.db queue to measure: exit 2, saying so', async () => {
    const r = await runCli(['capacity', '--from-state', '--home', t.home], {
      env: { ORCH_EVENT_BUS: 'redis', ORCH_DISTRIBUTED_ENABLED: 'true' },
    })
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('keeps the task queue in Redis (event_bus_type: redis)')
  })
})
