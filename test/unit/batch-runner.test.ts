import { afterEach, beforeEach, describe, expect, spyOn, test } from 'bun:test'
import { existsSync, mkdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { runSchedule, type TickSummary } from '../../src/batch/schedule.ts'
import { forgetBatch, importProcessedJson, isProcessed, listProcessed } from '../../src/batch/state.ts'
import {
  type BatchScorer,
  checkBatchName,
  E_BATCH_INPUTS_ROOT,
  listBatchFolders,
  resolveSettings,
  scanLocks,
  scoreFolder,
  tick,
} from '../../src/batch/tick.ts'
import { formatAge } from '../../src/core/age.ts'
import { OrchError } from '../../src/core/errors.ts'
import { configureLogging, logger } from '../../src/core/log.ts'
import { openStore, type Store } from '../../src/store/db.ts'
import { kvGet } from '../../src/store/kv.ts'
import { tempDir } from '../helpers/cli.ts'

/** A stub engine: records what it scored, and sees the lock held while it runs. */
function stubEngine(fail = false): BatchScorer & { seen: string[]; lockedDuringRun: boolean[] } {
  const seen: string[] = []
  const lockedDuringRun: boolean[] = []
  return {
    name: 'stub',
    seen,
    lockedDuringRun,
    async score(dir) {
      seen.push(dir)
      lockedDuringRun.push(existsSync(join(dir, '.lock')))
      if (fail) throw new Error('boom')
      return { metrics: { 'lb.performance': { score: 4 } }, summary: { scored_metrics: 1 } }
    },
  }
}

let tmp: ReturnType<typeof tempDir>
let store: Store
let settings: ReturnType<typeof resolveSettings>

function batch(name: string, files: Record<string, string> = { 'lb_performance.json': '{}' }, mtimeSec?: number): string {
  const dir = join(settings.inputsRoot, name)
  mkdirSync(dir, { recursive: true })
  for (const [file, body] of Object.entries(files)) {
    mkdirSync(join(dir, file, '..'), { recursive: true })
    writeFileSync(join(dir, file), body)
  }
  if (mtimeSec !== undefined) utimesSync(dir, mtimeSec, mtimeSec)
  return dir
}

beforeEach(() => {
  configureLogging({ level: 'none' })
  tmp = tempDir('orch-batch-')
  settings = resolveSettings({ inputs_root: 'Data/Inputs', outputs_root: 'Data/Outputs', file_glob_patterns: ['*.json'] }, tmp.path)
  mkdirSync(settings.inputsRoot, { recursive: true })
  store = openStore(join(tmp.path, '.orch'))
})

afterEach(() => {
  store.close()
  tmp.cleanup()
})

describe('pending rules', () => {
  test('a folder needs a matching file at its root, no .lock, and not processed', () => {
    batch('ok', undefined, 1000)
    batch('nested', { 'inputs/a.json': '{}' }, 1001)
    batch('text', { 'notes.txt': 'x' }, 1002)
    batch('locked', { 'a.json': '{}', '.lock': '' }, 1003)
    const states = Object.fromEntries(listBatchFolders(settings, store).map((f) => [f.name, f.state]))
    expect(states).toEqual({ ok: 'pending', nested: 'empty', text: 'empty', locked: 'locked' })
  })

  test('a pattern with a folder in it matches below the root', () => {
    batch('nested', { 'inputs/a.json': '{}' })
    const withNested = { ...settings, patterns: ['*.json', 'inputs/*.json'] }
    expect(listBatchFolders(withNested, store)[0]?.state).toBe('pending')
  })
})

describe('tick', () => {
  test('picks the newest by mtime, one per tick, then reports nothing pending', async () => {
    batch('old', undefined, 1000)
    batch('new', undefined, 3000)
    batch('mid', undefined, 2000)
    const engine = stubEngine()
    const order: (string | undefined)[] = []
    for (let i = 0; i < 4; i++) {
      const outcome = await tick(settings, { store, engine })
      expect(outcome.exitCode).toBe(0)
      order.push(outcome.batch)
    }
    expect(order).toEqual(['new', 'mid', 'old', undefined])
    const result = JSON.parse(readFileSync(join(settings.outputsRoot, 'new', 'result.json'), 'utf8'))
    expect(result.metrics).toBeDefined()
    expect(result.summary.scored_metrics).toBeGreaterThan(0)
    expect(isProcessed(store, join(settings.inputsRoot, 'new'))).toBe(true)
  })

  test('holds the lock while scoring and removes it afterwards', async () => {
    const dir = batch('one')
    const engine = stubEngine()
    await tick(settings, { store, engine })
    expect(engine.lockedDuringRun).toEqual([true])
    expect(existsSync(join(dir, '.lock'))).toBe(false)
  })

  test('engine failure: exit 1, lock removed, recorded, no result written', async () => {
    const dir = batch('bad')
    const outcome = await tick(settings, { store, engine: stubEngine(true) })
    expect(outcome.exitCode).toBe(1)
    expect(outcome.error).toContain('boom')
    expect(existsSync(join(dir, '.lock'))).toBe(false)
    expect(existsSync(join(settings.outputsRoot, 'bad', 'result.json'))).toBe(false)
    expect(listProcessed(store)[0]?.exit_status).toBe(1)
  })

  test('a result that scored nothing is an engine failure', async () => {
    batch('none')
    const engine: BatchScorer = { name: 'empty', score: async () => ({ metrics: {}, summary: { scored_metrics: 0 } }) }
    const outcome = await tick(settings, { store, engine })
    expect(outcome.exitCode).toBe(1)
    expect(outcome.error).toContain('no metric could be scored')
  })

  test('result file cannot be written (a file blocks its folder): exit 2 and the lock is removed', async () => {
    batch('one')
    mkdirSync(settings.outputsRoot, { recursive: true })
    writeFileSync(join(settings.outputsRoot, 'one'), 'a file where the folder should be')
    const outcome = await tick(settings, { store, engine: stubEngine() })
    expect(outcome.exitCode).toBe(2)
    expect(existsSync(join(settings.inputsRoot, 'one', '.lock'))).toBe(false)
  })

  test('a batch that is already locked is skipped for the next one', async () => {
    batch('locked', { 'a.json': '{}', '.lock': '' }, 2000)
    batch('free', undefined, 1000)
    expect((await tick(settings, { store, engine: stubEngine() })).batch).toBe('free')
    expect(existsSync(join(settings.inputsRoot, 'locked', '.lock'))).toBe(true)
  })

  test('two racing ticks never process one batch twice', async () => {
    batch('a', undefined, 1000)
    batch('b', undefined, 2000)
    const engine = stubEngine()
    const outcomes = await Promise.all([tick(settings, { store, engine }), tick(settings, { store, engine })])
    expect(outcomes.map((o) => o.batch).sort()).toEqual(['a', 'b'])
    expect(engine.seen.length).toBe(2)
  })

  test('reset lets a processed batch run again', async () => {
    batch('again')
    const engine = stubEngine()
    await tick(settings, { store, engine })
    expect((await tick(settings, { store, engine })).batch).toBeUndefined()
    expect(forgetBatch(store, 'again')).toBe(1)
    expect((await tick(settings, { store, engine })).batch).toBe('again')
  })
})

describe('processed.json import', () => {
  test('a processed.json list beside the inputs is imported once', async () => {
    const done = batch('done', undefined, 2000)
    batch('todo', undefined, 1000)
    const stateDir = join(tmp.path, 'Data', 'state')
    mkdirSync(stateDir, { recursive: true })
    writeFileSync(join(stateDir, 'processed.json'), JSON.stringify([done]))
    const engine = stubEngine()
    expect((await tick(settings, { store, engine })).batch).toBe('todo')
    forgetBatch(store, 'done')
    // Not imported a second time: the reset holds.
    expect((await tick(settings, { store, engine })).batch).toBe('done')
  })

  test('the import mark is JSON in kv, and a mark holding a bare path (older state.db) still counts', async () => {
    const done = batch('done', undefined, 2000)
    const stateDir = join(tmp.path, 'Data', 'state')
    mkdirSync(stateDir, { recursive: true })
    const file = join(stateDir, 'processed.json')
    writeFileSync(file, JSON.stringify([done]))
    expect(importProcessedJson(store, file, 1)).toBe(1)
    expect(kvGet(store, 'batch.processed_json_imported')).toBe(file)
    forgetBatch(store, 'done')
    // An older state.db stored the path itself, not JSON: still read as "imported".
    store.run('UPDATE kv SET value = ? WHERE key = ?', [file, 'batch.processed_json_imported'])
    expect(importProcessedJson(store, file, 2)).toBe(0)
    expect(isProcessed(store, done)).toBe(false)
  })
})

describe('paths stay inside their roots', () => {
  test('a symlinked batch escaping inputs_root is refused', async () => {
    const outside = join(tmp.path, 'outside')
    mkdirSync(outside)
    writeFileSync(join(outside, 'a.json'), '{}')
    symlinkSync(outside, join(settings.inputsRoot, 'escape'))
    expect(listBatchFolders(settings, store)[0]?.state).toBe('outside')
    const engine = stubEngine()
    expect((await tick(settings, { store, engine })).batch).toBeUndefined()
    expect(engine.seen).toEqual([])
  })

  test('batch names with .. or separators are refused', () => {
    for (const name of ['..', '../x', 'a/b', '.hidden', '']) expect(() => checkBatchName(name)).toThrow()
    expect(checkBatchName('Sample1')).toBe('Sample1')
  })
})

test('scoreFolder writes atomically (no temp file left)', async () => {
  const dir = batch('one')
  const out = join(tmp.path, 'out', 'r.json')
  expect((await scoreFolder(dir, out, stubEngine())).exitCode).toBe(0)
  expect(JSON.parse(readFileSync(out, 'utf8')).summary.scored_metrics).toBe(1)
  const { readdirSync } = await import('node:fs')
  expect(readdirSync(join(tmp.path, 'out'))).toEqual(['r.json'])
})

describe('a missing inputs_root', () => {
  test('the tick refuses with a configuration error (exit 2) naming the setting and the resolved path; nothing is created', async () => {
    const missing = resolveSettings({ inputs_root: 'Gone/Inputs', outputs_root: 'Data/Outputs', file_glob_patterns: ['*.json'] }, tmp.path)
    const error = await tick(missing, { store, engine: stubEngine() }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(OrchError)
    expect(error).toMatchObject({ code: E_BATCH_INPUTS_ROOT, exitCode: 2 })
    expect((error as OrchError).message).toBe(
      `inputs_root Gone/Inputs (resolved ${join(tmp.path, 'Gone', 'Inputs')}) does not exist: create it, or set batch.inputs_root (ORCH_BATCH_INPUTS_ROOT)`,
    )
    expect(existsSync(join(tmp.path, 'Gone'))).toBe(false)
  })

  test('an absolute inputs_root is named once, without "resolved"', async () => {
    const path = join(tmp.path, 'abs-missing')
    const error = (await tick({ ...settings, inputsRoot: path, inputsRootSetting: path }, { store }).catch((e: unknown) => e)) as OrchError
    expect(error.message).toStartWith(`inputs_root ${path} does not exist: `)
    expect(error.hint).toBe(`mkdir -p ${path}`)
    const spaced = join(tmp.path, "it's here")
    const quoted = (await tick({ ...settings, inputsRoot: spaced }, { store }).catch((e: unknown) => e)) as OrchError
    expect(quoted.hint).toBe(`mkdir -p '${tmp.path}/it'\\''s here'`)
  })

  test('a schedule whose tick cannot look (the folder went away) reports why in the tick summary and keeps going', async () => {
    const stop = new AbortController()
    const summaries: TickSummary[] = []
    let calls = 0
    await runSchedule({
      intervalMs: 1,
      signal: stop.signal,
      tick: async () => {
        calls++
        return calls === 1 ? { exitCode: 2, error: 'inputs_root X does not exist' } : { exitCode: 0 }
      },
      onTick: (summary) => {
        summaries.push(summary)
        if (summaries.length === 2) stop.abort()
      },
    })
    expect(summaries.map((t) => [t.processed, t.error])).toEqual([
      [0, 'inputs_root X does not exist'],
      [0, undefined],
    ])
  })
})

test('schedule ticks at once, then stops cleanly on abort', async () => {
  const stop = new AbortController()
  let calls = 0
  const ticks = await runSchedule({
    intervalMs: 10_000,
    signal: stop.signal,
    tick: async () => {
      calls++
      setTimeout(() => stop.abort(), 5)
      return { exitCode: 0 }
    },
  })
  expect(calls).toBe(1)
  expect(ticks).toBe(1)
})

describe('stale locks', () => {
  function lock(name: string, ageSeconds: number, body = '') {
    const dir = batch(name)
    const path = join(dir, '.lock')
    writeFileSync(path, body)
    const at = (Date.now() - ageSeconds * 1000) / 1000
    utimesSync(path, at, at)
    return path
  }

  test('a lock is stale only once older than stale_lock_seconds; the pid is read when orch wrote it', () => {
    const s = { ...settings, staleLockSeconds: 600 }
    lock('young', 599)
    const oldPath = lock('old', 601, JSON.stringify({ pid: 4242, locked_at: '2026-01-01T00:00:00.000Z' }))
    batch('free')
    const locks = scanLocks(s, Date.now())
    expect(locks.map((l) => [l.name, l.stale, l.pid])).toEqual([
      ['old', true, 4242],
      ['young', false, null],
    ])
    expect(locks[0]?.path).toBe(oldPath)
    expect(locks[0]?.age_seconds).toBeGreaterThanOrEqual(601)
    expect(locks[1]?.age_seconds).toBeLessThan(600)
  })

  test('no inputs_root: no locks, no error', () => {
    expect(scanLocks({ ...settings, inputsRoot: join(tmp.path, 'nowhere') }, Date.now())).toEqual([])
  })

  test('the tick warns about a stale lock, naming the file to remove, and still skips the batch', async () => {
    const path = lock('stuck', 7200)
    lock('fresh', 10)
    const log = logger('batch')
    const info = spyOn(log, 'info').mockImplementation((() => {}) as never)
    const warn = spyOn(log, 'warn').mockImplementation((() => {}) as never)
    try {
      const engine = stubEngine()
      const outcome = await tick({ ...settings, staleLockSeconds: 3600 }, { store, engine })
      expect(outcome).toEqual({ exitCode: 0 })
      expect(engine.seen).toEqual([])
      expect(info.mock.calls.map((c) => String(c[0]))).toContain('skip stuck: locked')
      const warned = warn.mock.calls.map((c) => String(c[0]))
      expect(warned).toHaveLength(1)
      expect(warned[0]).toContain('stuck: its .lock is 2h 00m old')
      expect(warned[0]).toContain(`remove ${path}`)
    } finally {
      info.mockRestore()
      warn.mockRestore()
    }
  })

  test('formatAge', () => {
    expect([0, 59, 60, 187, 3599, 3600, 7500].map(formatAge)).toEqual(['0s', '59s', '1m 00s', '3m 07s', '59m 59s', '1h 00m', '2h 05m'])
  })
})

describe('schedule --all', () => {
  test('drains every pending batch in one tick, newest first, with progress against the pending count', async () => {
    batch('a', undefined, 1000)
    batch('b', undefined, 3000)
    batch('c', undefined, 2000)
    const stop = new AbortController()
    const engine = stubEngine()
    const progress: string[] = []
    const summaries: { tick: number; processed: number; failed: number }[] = []
    await runSchedule({
      intervalMs: 60_000,
      all: true,
      signal: stop.signal,
      tick: () => tick(settings, { store, engine }),
      pending: () => listBatchFolders(settings, store).filter((f) => f.state === 'pending').length,
      onBatch: (outcome, p) => progress.push(`${p.done}/${p.total} ${outcome.batch} ${outcome.exitCode}`),
      onTick: ({ tick: n, processed, failed }) => {
        summaries.push({ tick: n, processed, failed })
        stop.abort()
      },
    })
    expect(progress).toEqual(['1/3 b 0', '2/3 c 0', '3/3 a 0'])
    expect(summaries).toEqual([{ tick: 1, processed: 3, failed: 0 }])
  })

  test('a failing batch is counted, the drain goes on, and the total grows when batches arrive meanwhile', async () => {
    batch('first', undefined, 2000)
    const stop = new AbortController()
    let calls = 0
    const progress: string[] = []
    const summaries: number[][] = []
    await runSchedule({
      intervalMs: 60_000,
      all: true,
      signal: stop.signal,
      tick: async () => {
        calls++
        if (calls === 1) batch('late', undefined, 1000)
        return tick(settings, { store, engine: stubEngine(calls === 1) })
      },
      pending: () => listBatchFolders(settings, store).filter((f) => f.state === 'pending').length,
      onBatch: (outcome, p) => progress.push(`${p.done}/${p.total} ${outcome.batch} ${outcome.exitCode}`),
      onTick: ({ processed, failed }) => {
        summaries.push([processed, failed])
        stop.abort()
      },
    })
    expect(progress).toEqual(['1/1 first 1', '2/2 late 0'])
    expect(summaries).toEqual([[2, 1]])
  })

  test('without --all a tick processes one batch even when more are pending', async () => {
    batch('a', undefined, 1000)
    batch('b', undefined, 2000)
    const stop = new AbortController()
    const done: string[] = []
    await runSchedule({
      intervalMs: 60_000,
      signal: stop.signal,
      tick: () => tick(settings, { store, engine: stubEngine() }),
      onBatch: (outcome) => done.push(outcome.batch ?? ''),
      onTick: () => stop.abort(),
    })
    expect(done).toEqual(['b'])
  })
})
