/**
 * The measures behind `orch capacity --from-state`, on hand-made task times: overlapping intervals give the
 * concurrency, arrivals in 1-minute buckets the peak, waits the efficiency; the slots come from the config;
 * the window read takes only the tasks of the window, from a real state.db.
 */
import { afterEach, describe, expect, test } from 'bun:test'
import {
  arrivalPeak,
  configuredSlots,
  measureWorkload,
  occupancy,
  planInputs,
  readWindow,
  type Slots,
  summarize,
  type TaskTimes,
} from '../../src/capacity/measured.ts'
import { validateData } from '../../src/config/validate.ts'
import { openStore } from '../../src/store/db.ts'
import { tempDir } from '../helpers/cli.ts'

const S = 1000
const MIN = 60 * S
const T0 = Date.UTC(2026, 11, 1, 10, 0, 0)
const at = (seconds: number) => T0 + seconds * S

const slots = (total: number, perInstance = total, instances = 1): Slots => ({
  total,
  perInstance,
  instances,
  cap: { concurrency: null, source: 'test' },
  entries: [{ kind: 'backend', name: 'b', instances, concurrency: perInstance, source: 'test', models: null }],
})

function task(model: string, created: number, started: number | null, ended: number | null, extra: Partial<TaskTimes> = {}): TaskTimes {
  return {
    model,
    state: 'done',
    attempts: 1,
    createdAt: at(created),
    startedAt: started === null ? null : at(started),
    endedAt: ended === null ? null : at(ended),
    ...extra,
  }
}

describe('occupancy: tasks at once from their intervals', () => {
  test('overlaps add up; the mean is task time over the span', () => {
    // 0-10, 2-6, 4-8: three at once during 4-6.
    const running = [
      { from: at(0), to: at(10) },
      { from: at(2), to: at(6) },
      { from: at(4), to: at(8) },
    ]
    const o = occupancy(running, [], 4, at(0), at(10))
    expect(o.maxRunning).toBe(3)
    expect(o.busyMs).toBe(18 * S)
    expect(o.averageRunning).toBeCloseTo(1.8, 12)
    expect(o.usedSlotMs).toBe(18 * S)
    expect(o.waitingMs).toBe(0)
  })

  test('one ending where the next starts is no overlap; a zero-length task never counts', () => {
    const o = occupancy(
      [
        { from: at(0), to: at(5) },
        { from: at(5), to: at(10) },
        { from: at(3), to: at(3) },
      ],
      [],
      2,
      at(0),
      at(10),
    )
    expect(o.maxRunning).toBe(1)
    expect(o.busyMs).toBe(10 * S)
  })

  test('intervals are clipped to the span; slot time in use stops at the slots', () => {
    const running = [
      { from: at(-5), to: at(5) },
      { from: at(0), to: at(20) },
      { from: at(0), to: at(4) },
    ]
    const o = occupancy(running, [], 2, at(0), at(10))
    expect(o.busyMs).toBe((5 + 10 + 4) * S)
    expect(o.maxRunning).toBe(3)
    // 3 running for 4 s but 2 slots: 2×4 + 2×1 + 1×5.
    expect(o.usedSlotMs).toBe((8 + 2 + 5) * S)
  })

  test('slot time in use is also counted while some task waited', () => {
    // One slot; a task waits 2-5 while the other runs 0-5, then runs 5-8.
    const o = occupancy(
      [
        { from: at(0), to: at(5) },
        { from: at(5), to: at(8) },
      ],
      [{ from: at(2), to: at(5) }],
      1,
      at(0),
      at(10),
    )
    expect(o.waitingMs).toBe(3 * S)
    expect(o.usedWhileWaitingMs).toBe(3 * S)
  })
})

describe('arrivalPeak: the busiest bucket against the mean', () => {
  test('buckets of a minute; peak = busiest ÷ mean per bucket', () => {
    // 10 minutes: 5 arrivals a minute, but 20 in minute 3.
    const arrivals = Array.from({ length: 10 }, (_, m) => Array.from({ length: m === 3 ? 20 : 5 }, (_, i) => T0 + m * MIN + i * S)).flat()
    const p = arrivalPeak(arrivals, T0, T0 + 10 * MIN)
    expect(p.buckets).toBe(10)
    expect(p.busiest).toBe(20)
    expect(p.meanPerBucket).toBeCloseTo(6.5, 12)
    expect(p.peak).toBeCloseTo(20 / 6.5, 12)
  })

  test('even arrivals: peak 1; a span under two buckets has no peak to measure', () => {
    const even = Array.from({ length: 30 }, (_, i) => T0 + i * 20 * S)
    expect(arrivalPeak(even, T0, T0 + 10 * MIN).peak).toBeCloseTo(1, 12)
    expect(arrivalPeak([T0, T0 + 5 * S], T0, T0 + 90 * S).peak).toBeNull()
  })

  test('the arrival at the very end falls in the last bucket; arrivals outside the span are not counted', () => {
    const p = arrivalPeak([T0 - S, T0, T0 + 2 * MIN], T0, T0 + 2 * MIN)
    expect(p.buckets).toBe(2)
    expect(p.busiest).toBe(1)
  })
})

describe('summarize', () => {
  test('mean and nearest-rank percentiles', () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1)
    expect(summarize(values)).toEqual({ count: 100, mean: 50.5, p50: 50, p95: 95, min: 1, max: 100 })
    expect(summarize([3])).toEqual({ count: 1, mean: 3, p50: 3, p95: 3, min: 3, max: 3 })
    expect(summarize([])).toBeNull()
  })
})

describe('configuredSlots', () => {
  test('backends and pool workers serving the model, added up, at most agent_runner_concurrency', () => {
    const { config, issues } = validateData({
      runtime: { ollama: { concurrency: 2 } },
      backends: [
        { name: 'a', url: 'http://127.0.0.1:1', concurrency: 4 },
        { name: 'b', url: 'http://127.0.0.1:2', models: ['qwen2.5'] },
      ],
      pools: [{ name: 'p', pool_size: 3, models: ['llama3.2:latest'] }],
      infrastructure_system: { distributed_simulation: { agent_runner_concurrency: 100 } },
    })
    if (!config) throw new Error(JSON.stringify(issues))
    const llama = configuredSlots(config, 'llama3.2')
    expect(llama.entries.map((e) => e.name)).toEqual(['a', 'p'])
    expect(llama).toMatchObject({ total: 4 + 3 * 2, instances: 4, perInstance: 2 })
    expect(configuredSlots(config, 'qwen2.5')).toMatchObject({ total: 4 + 2, instances: 2, perInstance: 3 })
    expect(configuredSlots(config)).toMatchObject({ total: 4 + 2 + 6, instances: 5 })
    config.infrastructure_system.distributed_simulation.agent_runner_concurrency = 5
    expect(configuredSlots(config)).toMatchObject({ total: 5, perInstance: 2, cap: { concurrency: 5 } })
    config.infrastructure_system.enabled = false
    expect(configuredSlots(config)).toMatchObject({ total: 12, cap: { concurrency: null } })
  })
})

describe('measureWorkload and planInputs', () => {
  // Two slots. a: 3 tasks of 10 s; b: 1 task of 20 s; two of a waited for a slot. A queued and a failed task too.
  const tasks: TaskTimes[] = [
    task('a', 0, 0, 10),
    task('b', 0, 0, 20),
    task('a', 1, 10, 20),
    task('a', 2, 20, 30),
    task('a', 25, null, null, { state: 'queued' }),
    task('b', 3, 5, 6, { state: 'failed', attempts: 2 }),
  ]
  const m = measureWorkload(tasks, at(-3600), at(100), () => slots(2)) as NonNullable<ReturnType<typeof measureWorkload>>

  test('the span runs from the first task to the last thing that happened; durations are of done tasks', () => {
    expect([m.from, m.to]).toEqual([at(0), at(30)])
    expect(m.overall.arrivals).toBe(6)
    expect(m.overall.durations).toMatchObject({ count: 4, mean: 12.5, p50: 10, p95: 20 })
    expect(m.models.map((s) => [s.model, s.arrivals, s.durations?.count])).toEqual([
      ['a', 4, 3],
      ['b', 2, 1],
    ])
  })

  test('efficiency: slot time in use while a first attempt waited (1-10 and 2-20), over the slots', () => {
    // Waiting 1-20 (19 s). In use: 1-5 two, 5-6 two (three running, two slots), 6-20 two: all of it.
    expect(m.overall.occupancy.waitingMs).toBe(19 * S)
    expect(m.efficiency).toBe(1)
    expect(m.overall.occupancy.maxRunning).toBe(3)
    // Utilisation over the span: 0-20 two in use (40), 20-30 one (10), of 2 × 30.
    expect(m.overall.utilisation).toBeCloseTo(50 / 60, 12)
  })

  test('inputs come with where they came from; the plan input is those values', () => {
    const inputs = planInputs(m.overall, m, { headroom: 0.5 })
    if ('skipped' in inputs) throw new Error(inputs.skipped)
    expect(inputs.input).toEqual({
      tasksPerHour: (6 / 30) * 3600,
      durationHours: 12.5 / 3600,
      concurrency: 2,
      efficiency: 1,
      headroom: 0.5,
      peak: 1,
      targetWaitSeconds: undefined,
    })
    expect(inputs.durationSeconds.source).toBe('mean of 4 done tasks since 2026-12-01T09:00:00Z (p50 10s, p95 20s)')
    expect(inputs.tasksPerHour.source).toBe('6 tasks created over the activity span of 30s (2026-12-01T10:00:00Z to 2026-12-01T10:00:30Z)')
    expect(inputs.peak).toMatchObject({ value: 1, from: 'default' })
    expect(inputs.headroom).toMatchObject({ value: 0.5, from: 'flag' })
    expect(planInputs(m.models[0] as never, m, {})).toMatchObject({
      durationSeconds: { source: expect.stringContaining('done tasks of a') },
    })
  })

  test('no waiting: efficiency is the default, said so; a model without done tasks or without slots has no plan', () => {
    const idle = measureWorkload([task('a', 0, 0, 5), task('a', 10, 10, 15)], at(-60), at(100), () => slots(2))
    if (idle === null) throw new Error('no measurement')
    expect(idle.efficiency).toBeNull()
    const inputs = planInputs(idle.overall, idle, {})
    expect(inputs).toMatchObject({ efficiency: { value: 0.8, from: 'default', source: expect.stringContaining('no task waited') } })
    const onlyQueued = measureWorkload([task('a', 0, null, null, { state: 'queued' })], at(-60), at(100), () => slots(2))
    if (onlyQueued === null) throw new Error('no measurement')
    expect(planInputs(onlyQueued.overall, onlyQueued)).toEqual({ skipped: 'no done task finished in the window' })
    const noSlots = measureWorkload([task('a', 0, 0, 5)], at(-60), at(100), () => ({ ...slots(0), instances: 0, entries: [] }))
    if (noSlots === null) throw new Error('no measurement')
    expect(planInputs(noSlots.models[0] as never, noSlots)).toEqual({ skipped: 'no configured backend or pool serves a' })
    expect(measureWorkload([], at(0), at(1), () => slots(1))).toBeNull()
  })
})

describe('readWindow: the tasks of the window from state.db', () => {
  const cleanups: Array<() => void> = []
  afterEach(() => {
    for (const c of cleanups.splice(0)) c()
  })

  test('finished in the window, and unfinished created in it; a running task ends at its lease', () => {
    const dir = tempDir('orch-measured-')
    cleanups.push(dir.cleanup)
    const store = openStore(dir.path)
    cleanups.push(() => store.close())
    const insert = (
      id: string,
      state: string,
      created: number,
      started: number | null,
      finished: number | null,
      lease: number | null = null,
    ) =>
      store.run(
        `INSERT INTO tasks (id, type, model, state, max_attempts, run_after, claim_rank, created_at, updated_at, started_at, finished_at, lease_expires_at, attempts)
         VALUES (?, 'generate', 'm', ?, 3, 0, 0, ?, ?, ?, ?, ?, 1)`,
        [id, state, created, created, started, finished, lease],
      )
    insert('old', 'done', at(-200), at(-199), at(-198))
    insert('spans-start', 'done', at(-200), at(-5), at(5))
    insert('inside', 'done', at(1), at(2), at(3))
    insert('queued-old', 'queued', at(-200), null, null)
    insert('queued', 'queued', at(4), null, null)
    insert('running', 'running', at(6), at(7), null, at(60))
    insert('later', 'done', at(200), at(201), at(202))
    const tasks = readWindow(store, at(0), at(50))
    const byCreated = tasks.map((t) => [
      t.state,
      t.createdAt - T0,
      t.startedAt === null ? null : t.startedAt - T0,
      t.endedAt === null ? null : t.endedAt - T0,
    ])
    expect(byCreated.sort((x, y) => (x[1] as number) - (y[1] as number))).toEqual([
      ['done', -200 * S, -5 * S, 5 * S],
      ['done', 1 * S, 2 * S, 3 * S],
      ['queued', 4 * S, null, null],
      // The lease runs past the window's end: clipped to it.
      ['running', 6 * S, 7 * S, 50 * S],
    ])
  })
})
