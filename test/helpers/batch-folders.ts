/**
 * A batch runner's folders for tests of GET /batch and the dashboard's batch page: an inputs_root holding a
 * processed batch (scored by a real `orch batch tick`), a pending one, one locked long ago (stale) and one
 * locked just now, each a copy of examples/Inputs/Sample1; the config that points orch at them.
 */
import { cpSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT, runCli } from './cli.ts'

export interface BatchFolders {
  inputsRoot: string
  outputsRoot: string
  /** A working directory whose orch.json names the two roots (absolute). */
  cwd: string
  /** `orch batch ...` in `cwd` against the state.db of `home`. */
  cli(...args: string[]): ReturnType<typeof runCli>
}

const SAMPLE = join(ROOT, 'examples', 'Inputs', 'Sample1')

/** The folders under `dir`; `home` is the ORCH_HOME whose state.db the batches are recorded in. */
export function makeBatchFolders(dir: string, home: string): BatchFolders {
  const inputsRoot = join(dir, 'Inputs')
  const outputsRoot = join(dir, 'Outputs')
  const add = (name: string, mtimeSec: number) => {
    const folder = join(inputsRoot, name)
    mkdirSync(folder, { recursive: true })
    cpSync(SAMPLE, folder, { recursive: true })
    utimesSync(folder, mtimeSec, mtimeSec)
    return folder
  }
  const now = Math.floor(Date.now() / 1000)
  add('Scored', now - 60)
  add('Waiting', now - 3600)
  const stale = join(add('Stuck', now - 7200), '.lock')
  writeFileSync(stale, JSON.stringify({ pid: 4242 }))
  utimesSync(stale, now - 7200, now - 7200)
  writeFileSync(join(add('Busy', now - 5400), '.lock'), JSON.stringify({ pid: 4343 }))
  const cwd = join(dir, 'work')
  mkdirSync(cwd, { recursive: true })
  writeFileSync(join(cwd, 'orch.json'), JSON.stringify({ batch: { inputs_root: inputsRoot, outputs_root: outputsRoot } }))
  return { inputsRoot, outputsRoot, cwd, cli: (...args) => runCli(['batch', ...args], { cwd, env: { ORCH_HOME: home } }) }
}

/** The status without the lock ages, which grow by the second between two readings. */
export function withoutAges<T extends { locks: Array<{ age_seconds: number }> }>(status: T) {
  return { ...status, locks: status.locks.map(({ age_seconds: _, ...lock }) => lock) }
}
