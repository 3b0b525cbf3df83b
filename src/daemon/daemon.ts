/**
 * `orch serve --detach` and `orch stop`. Detaching re-launches orch itself (the compiled binary, or bun with
 * the script when run from source) as `serve … --home $ORCH_HOME --detached-child` in a new session, its
 * output appended to `$ORCH_HOME/logs/serve.log`, and waits until the child has recorded itself in
 * `$ORCH_HOME` (it does so once it listens, pidfile.ts) or has died. Stopping sends SIGTERM, waits, then
 * SIGKILL; it stops every server recorded in the state directory, foreground or detached.
 */
import { closeSync, fstatSync, mkdirSync, openSync, writeSync } from 'node:fs'
import { OrchError } from '../core/errors.ts'
import { logsDir, serveLogPath, serveRecordPath } from '../core/home.ts'
import { rotateLog } from '../core/log-rotate.ts'
import { isAlive, selfCommand } from '../core/process.ts'
import { readSince } from './logfile.ts'
import { alreadyRunning, type PidInfo, readPidFile, removePidFile, type ServeMode, serveRecords } from './pidfile.ts'

/** How long `--detach` waits for the server to listen: bun's start, the state store, a first health check of each backend. */
export const START_WAIT_MS = 20_000
/** `orch stop` waits graceful_shutdown_timeout_ms plus this before SIGKILL. */
export const STOP_MARGIN_MS = 5000
const POLL_MS = 100

export interface Detached {
  pid: number
  url: string
  home: string
  pid_file: string
  log_file: string
}

export interface DetachOptions {
  /** Start even when a server already runs on `home` (the child gets --allow-second too). */
  allowSecond?: boolean
  waitMs?: number
}

/**
 * Start `orch serve` in the background. `args` are the child's orch arguments (`serve --port 0 …`, without
 * --detach, --home or --detached-child, which are added here).
 */
export async function detach(args: string[], home: string, options: DetachOptions = {}): Promise<Detached> {
  const waitMs = options.waitMs ?? START_WAIT_MS
  const running = serveRecords(home).live[0]
  if (running && !options.allowSecond) throw alreadyRunning(running)
  const logFile = serveLogPath(home)
  mkdirSync(logsDir(home), { recursive: true })
  // Past LOG_MAX_BYTES serve.log is renamed to serve.log.1 (older ones shift, 3 kept) before this server appends.
  rotateLog(logFile)
  const fd = openSync(logFile, 'a')
  let child: Bun.Subprocess
  let from: number
  try {
    writeSync(fd, `--- ${new Date().toISOString()} orch serve --detach (home ${home}) ---\n`)
    from = fstatSync(fd).size
    const extra = options.allowSecond ? ['--allow-second'] : []
    child = Bun.spawn([...selfCommand(), ...args, ...extra, '--home', home, '--detached-child'], {
      cwd: process.cwd(),
      env: process.env,
      stdio: ['ignore', fd, fd],
      detached: true,
    })
  } finally {
    closeSync(fd)
  }
  child.unref()
  const deadline = Date.now() + waitMs
  for (;;) {
    const mine = serveRecords(home).live.find((record) => record.info.pid === child.pid)
    if (mine) return { pid: child.pid, url: mine.info.url, home, pid_file: mine.file, log_file: logFile }
    if (child.exitCode !== null || child.signalCode !== null) {
      const how = child.signalCode ? `was killed by ${child.signalCode}` : `exited with code ${child.exitCode}`
      throw startFailure(`orch serve ${how} before it was listening`, logFile, from, child.exitCode)
    }
    if (Date.now() > deadline) {
      await terminate(child.pid, 2000)
      throw startFailure(`orch serve was not listening after ${waitMs / 1000} s; it was stopped`, logFile, from, null)
    }
    await Bun.sleep(POLL_MS)
  }
}

function startFailure(what: string, logFile: string, from: number, exitCode: number | null): OrchError {
  const lines = readSince(logFile, from, 20)
  const shown = lines.length > 0 ? `; the last lines of ${logFile}:\n${lines.map((l) => `  ${l}`).join('\n')}` : ` (${logFile} is empty)`
  return new OrchError(`${what}${shown}`, {
    code: 'E_START',
    // A configuration or usage problem found by the child keeps its exit code (2).
    ...(exitCode === 2 ? { exitCode: 2 } : {}),
    hint: 'fix the cause above and try again; `orch serve` without --detach shows the same in the foreground',
    details: { log_file: logFile },
  })
}

/** Poll until `pid` is gone or `ms` have passed; true when gone. */
export async function waitForExit(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (isAlive(pid)) {
    if (Date.now() >= deadline) return false
    await Bun.sleep(POLL_MS)
  }
  return true
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'EPERM') {
      throw new OrchError(`no permission to signal orch serve (pid ${pid}): it runs as another user`, {
        code: 'E_STOP',
        hint: 'run orch stop as that user',
      })
    }
    if (code !== 'ESRCH') throw error
  }
}

/** SIGTERM, wait `graceMs`, SIGKILL; whether SIGKILL was needed. */
async function terminate(pid: number, graceMs: number): Promise<{ forced: boolean; gone: boolean }> {
  signal(pid, 'SIGTERM')
  if (await waitForExit(pid, graceMs)) return { forced: false, gone: true }
  signal(pid, 'SIGKILL')
  return { forced: true, gone: await waitForExit(pid, 5000) }
}

export interface StoppedServer {
  pid: number
  url: string
  mode: ServeMode
  forced: boolean
  elapsed_ms: number
  pid_file: string
}

export type StopResult =
  | { stopped: false; running: false; pid_file: string; stale_pid?: number }
  /** The first server's figures at the top; `servers` lists every one stopped (more than one after --allow-second). */
  | ({ stopped: true; running: false; servers: StoppedServer[] } & StoppedServer)

/**
 * Stop every server recorded for `home` (foreground or background), all at once: SIGTERM, up to `timeoutMs`
 * for each to finish its work in flight and exit, then SIGKILL (`onForce` is told first). Nothing running
 * (or only stale records, removed) is not an error.
 */
export async function stopDaemon(home: string, timeoutMs: number, onForce?: (pid: number) => void): Promise<StopResult> {
  const { live, stale } = serveRecords(home)
  const [first] = live
  if (!first) {
    return { stopped: false, running: false, pid_file: serveRecordPath(home), ...(stale[0] ? { stale_pid: stale[0].pid } : {}) }
  }
  const servers = await Promise.all(live.map(({ info, file }) => stopOne(info, file, timeoutMs, onForce)))
  return { stopped: true, running: false, ...(servers[0] as StoppedServer), servers }
}

async function stopOne(info: PidInfo, file: string, timeoutMs: number, onForce?: (pid: number) => void): Promise<StoppedServer> {
  const { pid, url, mode } = info
  const started = Date.now()
  signal(pid, 'SIGTERM')
  let forced = false
  if (!(await waitForExit(pid, timeoutMs))) {
    forced = true
    onForce?.(pid)
    signal(pid, 'SIGKILL')
    if (!(await waitForExit(pid, 5000))) {
      throw new OrchError(`orch serve (pid ${pid}) did not exit after SIGKILL`, {
        code: 'E_STOP',
        hint: `check the process with \`ps -p ${pid}\``,
      })
    }
  }
  // A graceful stop removes the file itself; after SIGKILL it is left behind.
  if (readPidFile(file)?.pid === pid) removePidFile(file)
  return { pid, url, mode, forced, elapsed_ms: Date.now() - started, pid_file: file }
}
