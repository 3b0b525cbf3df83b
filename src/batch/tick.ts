/**
 * The batch runner: list the batch folders under inputs_root; pending = at least one file matching
 * `file_glob_patterns` at the batch root, not processed, no `.lock`; pick the newest by mtime; create
 * `.lock` (exclusive); run the engine; write `<outputs_root>/<batch>/result.json` atomically; mark
 * processed; remove the lock, on failure too. Exit codes: 0 done or nothing pending, 1 engine failure,
 * 2 result not written (or no inputs_root folder to look in). See docs/operations.md#batch-runner.
 */
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs'
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path'
import { formatAge } from '../core/age.ts'
import { ExitCode, OrchError } from '../core/errors.ts'
import { logger } from '../core/log.ts'
import type { Store } from '../store/db.ts'
import { type BatchResult, type BatchScorer, builtinEngine, checkResult } from './scorer.ts'
import { importProcessedJson, isProcessed, markProcessed } from './state.ts'

export type { BatchResult, BatchScorer } from './scorer.ts'

export const LOCK_FILE = '.lock'
export const RESULT_FILE = 'result.json'

export interface BatchSettings {
  /** Absolute. */
  inputsRoot: string
  /** `batch.inputs_root` as configured (maybe relative), for messages; `inputsRoot` when absent. */
  inputsRootSetting?: string
  /** Absolute. */
  outputsRoot: string
  patterns: string[]
  /** A `.lock` older than this is reported as stale (it blocks its batch until removed). */
  staleLockSeconds: number
}

export interface RunnerDeps {
  store: Store
  engine?: BatchScorer
  now?: () => number
}

export type BatchState = 'pending' | 'processed' | 'locked' | 'empty' | 'outside'

export interface BatchFolder {
  name: string
  path: string
  mtimeMs: number
  state: BatchState
}

export interface RunOutcome {
  exitCode: 0 | 1 | 2
  batch?: string
  resultPath?: string
  result?: BatchResult
  error?: string
}

const SKIP_REASON: Record<Exclude<BatchState, 'pending'>, string> = {
  processed: 'already processed',
  locked: 'locked',
  empty: 'no input files',
  outside: 'resolves outside inputs_root',
}

export const DEFAULT_STALE_LOCK_SECONDS = 3600

export function resolveSettings(
  batch: { inputs_root: string; outputs_root: string; file_glob_patterns: string[]; stale_lock_seconds?: number },
  cwd: string,
) {
  return {
    inputsRoot: resolve(cwd, batch.inputs_root),
    inputsRootSetting: batch.inputs_root,
    outputsRoot: resolve(cwd, batch.outputs_root),
    patterns: batch.file_glob_patterns,
    staleLockSeconds: batch.stale_lock_seconds ?? DEFAULT_STALE_LOCK_SECONDS,
  } satisfies BatchSettings
}

export interface LockInfo {
  name: string
  /** The `.lock` file itself. */
  path: string
  /** The lock file's mtime, UTC. */
  locked_at: string
  age_seconds: number
  /** The process that wrote it, when orch wrote it (a lock written by another runner may be empty). */
  pid: number | null
  stale: boolean
}

/** The `.lock` in one batch folder, if there is one: its age (from its mtime), pid, and whether it is stale. */
function readLock(name: string, dir: string, settings: BatchSettings, now: number): LockInfo | undefined {
  const path = join(dir, LOCK_FILE)
  const stat = statSync(path, { throwIfNoEntry: false })
  if (stat === undefined || !stat.isFile()) return undefined
  let pid: number | null = null
  try {
    const written = JSON.parse(readFileSync(path, 'utf8')) as { pid?: unknown }
    if (Number.isInteger(written.pid)) pid = written.pid as number
  } catch {
    // An empty or foreign lock file: still a lock, just without a pid.
  }
  const age = Math.max(0, Math.floor((now - stat.mtimeMs) / 1000))
  return {
    name,
    path,
    locked_at: new Date(stat.mtimeMs).toISOString(),
    age_seconds: age,
    pid,
    stale: age > settings.staleLockSeconds,
  }
}

/**
 * Every batch folder's `.lock` under inputs_root, whatever the folder's state, with its age (from its mtime)
 * and whether it is older than `staleLockSeconds`. Reads only: no state.db, so `orch doctor` can use it.
 */
export function scanLocks(settings: BatchSettings, now: number): LockInfo[] {
  if (!existsSync(settings.inputsRoot)) return []
  const locks: LockInfo[] = []
  for (const entry of readdirSync(settings.inputsRoot, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue
    const lock = readLock(entry.name, join(settings.inputsRoot, entry.name), settings, now)
    if (lock) locks.push(lock)
  }
  return locks.sort((a, b) => a.name.localeCompare(b.name))
}

/** Where a runner without state.db kept its processed list: `<inputs_root>/../state/processed.json`. */
export const processedJsonFile = (settings: BatchSettings) => join(dirname(settings.inputsRoot), 'state', 'processed.json')

export const E_BATCH_INPUTS_ROOT = 'E_BATCH_INPUTS_ROOT'

/**
 * Why inputs_root cannot be listed (it does not exist, or is not a folder), or undefined when it can.
 * Without it "nothing pending" would hide a typo in the path or a missing mount.
 */
export function inputsRootProblem(settings: BatchSettings): string | undefined {
  const stat = statSync(settings.inputsRoot, { throwIfNoEntry: false })
  if (stat?.isDirectory()) return undefined
  const setting = settings.inputsRootSetting ?? settings.inputsRoot
  const where = setting === settings.inputsRoot ? setting : `${setting} (resolved ${settings.inputsRoot})`
  const what = stat === undefined ? 'does not exist' : 'is not a folder'
  return `inputs_root ${where} ${what}: create it, or set batch.inputs_root (ORCH_BATCH_INPUTS_ROOT)`
}

/** A path as one shell word, for a hint to paste: quoted only when it needs to be. */
const shellWord = (path: string): string => (/^[\w@%+=:,./-]+$/.test(path) ? path : `'${path.replaceAll("'", `'\\''`)}'`)

/** Throws a configuration error (exit 2) when inputs_root is missing or not a folder. */
export function requireInputsRoot(settings: BatchSettings): void {
  const problem = inputsRootProblem(settings)
  if (problem === undefined) return
  const exists = existsSync(settings.inputsRoot)
  throw new OrchError(problem, {
    code: E_BATCH_INPUTS_ROOT,
    exitCode: ExitCode.usage,
    hint: exists
      ? 'point batch.inputs_root at the folder that holds one sub-folder per batch'
      : `mkdir -p ${shellWord(settings.inputsRoot)}`,
    details: {
      inputs_root: settings.inputsRootSetting ?? settings.inputsRoot,
      inputs_root_resolved: settings.inputsRoot,
      inputs_root_exists: exists,
      inputs_root_is_folder: false,
    },
  })
}

/** A batch name is one plain path segment: no separators, no `..`, nothing hidden. */
export function checkBatchName(name: string): string {
  if (name === '' || name.startsWith('.') || name.includes('/') || name.includes('\\') || name.includes('\0')) {
    throw new OrchError(`"${name}" is not a batch name: it must be one folder name under inputs_root, without "/" or ".."`, {
      code: 'E_BATCH_NAME',
      exitCode: 2,
      hint: 'orch batch status lists the batches',
    })
  }
  return name
}

function isInside(root: string, path: string): boolean {
  const rel = relative(root, path)
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel)
}

export function hasInputFiles(dir: string, patterns: string[]): boolean {
  return patterns.some((pattern) => {
    for (const _ of new Bun.Glob(pattern).scanSync({ cwd: dir, onlyFiles: true, dot: false })) return true
    return false
  })
}

/** Every folder under inputs_root with its state, sorted newest first (then by name). */
export function listBatchFolders(settings: BatchSettings, store: Store): BatchFolder[] {
  if (!existsSync(settings.inputsRoot)) return []
  const root = realpathSync(settings.inputsRoot)
  const folders: BatchFolder[] = []
  for (const entry of readdirSync(settings.inputsRoot, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue
    const path = join(settings.inputsRoot, entry.name)
    let real: string
    let mtimeMs: number
    try {
      real = realpathSync(path)
      const stat = statSync(real)
      if (!stat.isDirectory()) continue
      mtimeMs = stat.mtimeMs
    } catch {
      continue
    }
    const folder = { name: entry.name, path: resolve(path), mtimeMs }
    folders.push({ ...folder, state: folderState(root, real, folder.path, settings, store) })
  }
  return folders.sort((a, b) => b.mtimeMs - a.mtimeMs || a.name.localeCompare(b.name))
}

function folderState(root: string, real: string, path: string, settings: BatchSettings, store: Store): BatchState {
  if (!isInside(root, real)) return 'outside'
  if (isProcessed(store, path)) return 'processed'
  if (existsSync(join(path, LOCK_FILE))) return 'locked'
  return hasInputFiles(path, settings.patterns) ? 'pending' : 'empty'
}

const warnedLocks = new Set<string>()

export const staleLockMessage = (lock: LockInfo, settings: BatchSettings): string =>
  `${lock.name}: its .lock is ${formatAge(lock.age_seconds)} old (over batch.stale_lock_seconds, ${settings.staleLockSeconds}); ` +
  `if no tick is still running on it, remove ${lock.path}`

/** Create `.lock` only if absent: of two racing ticks, exactly one gets it. */
function acquireLock(dir: string, now: number): boolean {
  try {
    const fd = openSync(join(dir, LOCK_FILE), 'wx')
    writeSync(fd, JSON.stringify({ pid: process.pid, locked_at: new Date(now).toISOString() }))
    closeSync(fd)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw error
  }
}

/** Temp file beside the target, then rename: a reader never sees half a result. */
export function writeResultAtomic(file: string, result: BatchResult): void {
  mkdirSync(dirname(file), { recursive: true })
  const temp = `${file}.tmp-${process.pid}-${Date.now()}`
  try {
    const fd = openSync(temp, 'w')
    try {
      writeSync(fd, `${JSON.stringify(result, null, 2)}\n`)
    } finally {
      closeSync(fd)
    }
    renameSync(temp, file)
  } catch (error) {
    rmSync(temp, { force: true })
    throw error
  }
}

/** Score one folder and write its result; failures become exit codes 1 (engine) and 2 (write). */
export async function scoreFolder(dir: string, resultPath: string, engine: BatchScorer): Promise<RunOutcome> {
  const batch = basename(dir)
  let result: BatchResult
  try {
    result = checkResult(await engine.score(dir))
  } catch (error) {
    return { exitCode: 1, batch, error: `engine failed on ${batch}: ${(error as Error).message}` }
  }
  try {
    writeResultAtomic(resultPath, result)
  } catch (error) {
    return { exitCode: 2, batch, result, error: `cannot write ${resultPath}: ${(error as Error).message}` }
  }
  return { exitCode: 0, batch, result, resultPath }
}

/** One runner pass: process at most one pending batch, the newest. */
export async function tick(settings: BatchSettings, deps: RunnerDeps): Promise<RunOutcome> {
  const log = logger('batch')
  const now = deps.now ?? Date.now
  requireInputsRoot(settings)
  const imported = importProcessedJson(deps.store, processedJsonFile(settings), now())
  if (imported > 0) log.info(`imported ${imported} processed batch(es) from ${processedJsonFile(settings)}`)
  const folders = listBatchFolders(settings, deps.store)
  log.info(`[runner] subdirs: ${JSON.stringify(folders.map((f) => f.name))}`)
  for (const folder of folders) if (folder.state !== 'pending') log.info(`skip ${folder.name}: ${SKIP_REASON[folder.state]}`)
  for (const folder of folders) {
    if (folder.state !== 'locked') continue
    const lock = readLock(folder.name, folder.path, settings, now())
    // Once per lock per process: `schedule --all` runs many passes a tick, and would repeat it every time.
    const key = `${lock?.path}@${lock?.locked_at}`
    if (!lock?.stale || warnedLocks.has(key)) continue
    warnedLocks.add(key)
    log.warn(staleLockMessage(lock, settings))
  }
  const pending = folders.filter((f) => f.state === 'pending')
  log.info(`pending candidates: ${JSON.stringify(pending.map((f) => f.name))}`)
  for (const folder of pending) {
    if (!acquireLock(folder.path, now())) {
      log.info(`skip ${folder.name}: locked`)
      continue
    }
    try {
      // Another tick may have finished this batch between our listing and our lock.
      if (isProcessed(deps.store, folder.path)) {
        log.info(`skip ${folder.name}: already processed`)
        continue
      }
      return await processFolder(folder, settings, deps, now)
    } finally {
      rmSync(join(folder.path, LOCK_FILE), { force: true })
    }
  }
  return { exitCode: 0 }
}

async function processFolder(folder: BatchFolder, settings: BatchSettings, deps: RunnerDeps, now: () => number): Promise<RunOutcome> {
  const log = logger('batch')
  log.info(`processing ${folder.name}`)
  const resultPath = join(settings.outputsRoot, folder.name, RESULT_FILE)
  const outcome = await scoreFolder(folder.path, resultPath, deps.engine ?? builtinEngine)
  markProcessed(deps.store, {
    path: folder.path,
    name: folder.name,
    processed_at: now(),
    exit_status: outcome.exitCode,
    summary: outcome.result?.summary ?? null,
    error: outcome.error ?? null,
    result_path: outcome.exitCode === 0 ? resultPath : null,
  })
  // The error itself is the caller's to report (stderr or --json); only success is logged here.
  if (!outcome.error) log.info(`${folder.name}: wrote ${resultPath}`)
  return outcome
}
