import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { existsSync, mkdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { type BatchEngine, checkBatchName, listBatchFolders, resolveSettings, scoreFolder, tick } from '../../src/batch/runner.ts'
import { runSchedule } from '../../src/batch/schedule.ts'
import { forgetBatch, isProcessed, listProcessed } from '../../src/batch/state.ts'
import { configureLogging } from '../../src/log.ts'
import { openStore, type Store } from '../../src/store/db.ts'
import { tempDir } from '../helpers/cli.ts'

/** A stub engine: records what it scored, and sees the lock held while it runs. */
function stubEngine(fail = false): BatchEngine & { seen: string[]; lockedDuringRun: boolean[] } {
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
    const engine: BatchEngine = { name: 'empty', score: async () => ({ metrics: {}, summary: { scored_metrics: 0 } }) }
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
  test('seed-style state is imported once', async () => {
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
