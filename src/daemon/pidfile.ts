/**
 * The pid file of a background `orch serve`: `$ORCH_HOME/serve.pid`, JSON, written by the server itself once it
 * listens and removed when it stops gracefully, so a pid file whose process lives means a listening server. A
 * file whose process is gone (crash, SIGKILL, reboot) is stale: readers treat it as "not running" and remove it.
 */
import { existsSync, linkSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { OrchError } from '../errors.ts'

export interface PidInfo {
  pid: number
  url: string
  /** ISO time the server started listening. */
  started_at: string
  version: string
  /** The server's arguments after the executable and script (`serve --port 0 …`). */
  argv: string[]
}

export type DaemonState =
  | { running: true; info: PidInfo; pidFile: string }
  /** `stale`: the pid file that was found (and removed) although its process is gone. */
  | { running: false; pidFile: string; stale?: PidInfo }

export const pidFilePath = (home: string) => join(home, 'serve.pid')

/** The pid file's content; undefined when there is none or it is not one of ours (half-written, garbage). */
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
      argv: info.argv ?? [],
    }
  } catch {
    return undefined
  }
}

/** Linux process state letter from /proc (R, S, Z…), undefined where there is no /proc. */
function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).charAt(0)
  } catch {
    return undefined
  }
}

/** Whether a process exists and has not exited; a zombie (exited, not yet reaped by its parent) counts as gone. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (error) {
    // EPERM: it exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
  const state = procState(pid)
  return state !== 'Z' && state !== 'X'
}

/**
 * Whether the live process `info.pid` is still the server that wrote the file, not an unrelated process that
 * got the same pid after a reboot: its command line must end with the recorded arguments. Without /proc
 * (macOS) there is no cheap check, and a live pid is trusted.
 */
function isSameProcess(info: PidInfo): boolean {
  let cmdline: string
  try {
    cmdline = readFileSync(`/proc/${info.pid}/cmdline`, 'utf8')
  } catch {
    return true
  }
  const args = cmdline.split('\0')
  if (args.at(-1) === '') args.pop()
  if (info.argv.length === 0) return true
  if (info.argv.length > args.length) return false
  const tail = args.slice(args.length - info.argv.length)
  return tail.every((arg, i) => arg === info.argv[i])
}

export function removePidFile(file: string): void {
  rmSync(file, { force: true })
}

/** Running, or not; a stale pid file is removed on the way (and reported). */
export function daemonState(home: string): DaemonState {
  const pidFile = pidFilePath(home)
  if (!existsSync(pidFile)) return { running: false, pidFile }
  const info = readPidFile(pidFile)
  if (info && isAlive(info.pid) && isSameProcess(info)) return { running: true, info, pidFile }
  removePidFile(pidFile)
  return info ? { running: false, pidFile, stale: info } : { running: false, pidFile }
}

/**
 * Write the pid file for this process, atomically and exclusively: the content goes to a temp file that is then
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
      if (other && other.pid !== process.pid && isAlive(other.pid) && isSameProcess(other)) {
        throw new OrchError(`another orch serve already runs for this state directory: ${other.url} (pid ${other.pid})`, {
          code: 'E_ALREADY_RUNNING',
          hint: 'stop it with `orch stop`, or use another --home',
          details: { pid: other.pid, url: other.url, pid_file: file },
        })
      }
      removePidFile(file)
    }
  } finally {
    unlinkSync(temp)
  }
}

/** Remove the pid file if it is this process's (never another server's). */
export function releasePidFile(file: string): void {
  if (readPidFile(file)?.pid === process.pid) removePidFile(file)
}
