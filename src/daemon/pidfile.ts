/**
 * The record of a running `orch serve` in its state directory: `$ORCH_HOME/serve.pid`, JSON, written by the
 * server itself (foreground or detached) once it listens and removed when it stops gracefully, so a record
 * whose process lives means a listening server. A second server started on purpose (`--allow-second`)
 * records itself beside it as `serve-<pid>.pid`. A record whose process is gone (crash, SIGKILL, reboot) or
 * whose pid now belongs to another program is stale: readers treat it as "not running" and remove it.
 */
import { existsSync, linkSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ExitCode, OrchError } from '../core/errors.ts'
import { SERVE_RECORD, SERVE_RECORD_NAME, secondServeRecordPath, serveRecordPath } from '../core/home.ts'
import { isAlive, readCmdline } from '../core/process.ts'

/** How the server runs: in a terminal (`orch serve`) or in the background (`orch serve --detach`). */
export type ServeMode = 'foreground' | 'detached'

export interface PidInfo {
  pid: number
  url: string
  /** ISO time the server started listening. */
  started_at: string
  version: string
  /** The server's arguments after the executable and script (`serve --port 0 …`). */
  argv: string[]
  mode: ServeMode
  /** The state directory the server uses (absolute). */
  home: string
}

/** One live server's record and the file it is in. */
export interface ServeRecord {
  info: PidInfo
  file: string
}

export type DaemonState =
  /** `others`: further servers started on the same state directory with --allow-second. */
  | { running: true; info: PidInfo; pidFile: string; others: ServeRecord[] }
  /** `stale`: the record that was found (and removed) although its process is gone. */
  | { running: false; pidFile: string; stale?: PidInfo }

/** The file's content; undefined when there is none or it is not one of ours (half-written, garbage). */
export function readPidFile(file: string): PidInfo | undefined {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch {
    return undefined
  }
  try {
    const info = JSON.parse(text) as Partial<PidInfo>
    if (!Number.isInteger(info.pid) || (info.pid as number) <= 0 || typeof info.url !== 'string') return undefined
    return {
      pid: info.pid as number,
      url: info.url,
      started_at: String(info.started_at ?? ''),
      version: String(info.version ?? ''),
      argv: Array.isArray(info.argv) ? info.argv.map(String) : [],
      // Files written before the mode was recorded came from `serve --detach`.
      mode: info.mode === 'foreground' ? 'foreground' : 'detached',
      home: String(info.home ?? ''),
    }
  } catch {
    return undefined
  }
}

/**
 * Whether the live process `info.pid` is still the server that wrote the file, not an unrelated process that
 * got the same pid after a reboot: its command line must end with the recorded arguments. Without /proc
 * (macOS) there is no cheap check, and a live pid is trusted.
 */
function isSameProcess(info: PidInfo): boolean {
  const args = readCmdline(info.pid)
  if (args === undefined) return true
  if (info.argv.length === 0) return true
  if (info.argv.length > args.length) return false
  const tail = args.slice(args.length - info.argv.length)
  return tail.every((arg, i) => arg === info.argv[i])
}

/** Whether the record belongs to a server that runs now. */
export const isLive = (info: PidInfo) => isAlive(info.pid) && isSameProcess(info)

export function removePidFile(file: string): void {
  rmSync(file, { force: true })
}

/** Every record file in `home`, the primary (`serve.pid`) first. */
function recordFiles(home: string): string[] {
  let names: string[]
  try {
    names = readdirSync(home)
  } catch {
    return []
  }
  const extras = names.filter((name) => SERVE_RECORD_NAME.test(name) && name !== SERVE_RECORD).sort()
  return [...(names.includes(SERVE_RECORD) ? [SERVE_RECORD] : []), ...extras].map((name) => join(home, name))
}

/** The live servers recorded in `home` (primary first); stale records are removed on the way, and returned. */
export function serveRecords(home: string): { live: ServeRecord[]; stale: PidInfo[] } {
  const live: ServeRecord[] = []
  const stale: PidInfo[] = []
  for (const file of recordFiles(home)) {
    const info = readPidFile(file)
    if (info && isLive(info)) {
      live.push({ info, file })
      continue
    }
    removePidFile(file)
    if (info) stale.push(info)
  }
  return { live, stale }
}

/** Running, or not; stale records are removed on the way (and the first one reported). */
export function daemonState(home: string): DaemonState {
  const pidFile = serveRecordPath(home)
  if (!existsSync(home)) return { running: false, pidFile }
  const { live, stale } = serveRecords(home)
  const [first, ...others] = live
  if (first) return { running: true, info: first.info, pidFile: first.file, others }
  return stale[0] ? { running: false, pidFile, stale: stale[0] } : { running: false, pidFile }
}

/** "in the foreground" / "in the background": how a record's server runs, for messages. */
export const modeText = (mode: ServeMode) => (mode === 'foreground' ? 'in the foreground' : 'in the background')

/**
 * The refusal of a second server on a state directory: names the running one and how to stop it. Exit 2:
 * the command as given conflicts with what runs; another --home, stopping the first, or --allow-second
 * resolves it.
 */
export function alreadyRunning(record: ServeRecord, stopCommand = 'orch stop'): OrchError {
  const { info } = record
  const where = info.home ? ` (${info.home})` : ''
  const ctrlC = info.mode === 'foreground' ? ', or Ctrl-C in its terminal' : ''
  return new OrchError(`orch serve already runs for this state directory${where}: ${info.url} (pid ${info.pid}, ${modeText(info.mode)})`, {
    code: 'E_ALREADY_RUNNING',
    exitCode: ExitCode.usage,
    hint: `stop it with \`${stopCommand}\`${ctrlC}; or use another --home; or add --allow-second to run a second server on the same state`,
    details: { pid: info.pid, url: info.url, mode: info.mode, pid_file: record.file },
  })
}

/**
 * Write a record for this process, atomically and exclusively: the content goes to a temp file that is then
 * hard-linked into place, which fails if the file exists. An existing file of a live server refuses (two
 * servers on one state directory); a stale one is replaced.
 */
export function writePidFile(file: string, info: PidInfo): void {
  const temp = `${file}.${process.pid}.tmp`
  writeFileSync(temp, `${JSON.stringify(info, null, 2)}\n`)
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(temp, file)
        return
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw error
      }
      const other = readPidFile(file)
      if (other && other.pid !== process.pid && isLive(other)) throw alreadyRunning({ info: other, file })
      removePidFile(file)
    }
  } finally {
    unlinkSync(temp)
  }
}

/**
 * Record this server in its state directory and return the file: `serve.pid`, or with `allowSecond`, when
 * another live server holds that, `serve-<pid>.pid` beside it.
 */
export function recordServe(home: string, info: PidInfo, allowSecond = false): string {
  const primary = serveRecordPath(home)
  try {
    writePidFile(primary, info)
    return primary
  } catch (error) {
    if (!allowSecond || (error as OrchError).code !== 'E_ALREADY_RUNNING') throw error
  }
  const extra = secondServeRecordPath(home, info.pid)
  writePidFile(extra, info)
  return extra
}

/** Remove the file if it is this process's (never another server's). */
export function releasePidFile(file: string): void {
  if (readPidFile(file)?.pid === process.pid) removePidFile(file)
}
