/**
 * `orch serve --detach` and `orch stop`. Detaching re-launches orch itself (the compiled binary, or bun with
 * the script when run from source) as `serve … --pid-file $ORCH_HOME/serve.pid` in a new session, its output
 * appended to `$ORCH_HOME/logs/serve.log`, and waits until the child has written the pid file (it does so
 * once it listens) or has died. Stopping sends SIGTERM, waits, then SIGKILL.
 */
import { closeSync, fstatSync, mkdirSync, openSync, writeSync } from 'node:fs'
import { basename } from 'node:path'
import { OrchError } from '../errors.ts'
import { logsDir, readSince, rotateLog, serveLogPath } from './logfile.ts'
import { daemonState, isAlive, type PidInfo, pidFilePath, readPidFile, removePidFile } from './pidfile.ts'

/** How long `--detach` waits for the server to listen: bun's start, the state store, a first health check of each backend. */
export const START_WAIT_MS = 20_000
/** `orch stop` waits graceful_shutdown_timeout_ms plus this before SIGKILL. */
export const STOP_MARGIN_MS = 5000
const POLL_MS = 100

/** The command line that starts this same orch: the compiled binary alone, or bun + flags + the entry script. */
export function selfCommand(): string[] {
  const compiled = Bun.main.startsWith('/$bunfs/') || Bun.main.includes('~BUN') || !basename(process.execPath).startsWith('bun')
  return compiled ? [process.execPath] : [process.execPath, '--no-env-file', Bun.main]
}

export interface Detached {
  pid: number
  url: string
  home: string
  pid_file: string
  log_file: string
}

/**
 * Start `orch serve` in the background. `args` are the child's orch arguments (`serve --port 0 …`, without
 * --detach, --home or --pid-file, which are added here).
 */
export async function detach(args: string[], home: string, waitMs = START_WAIT_MS): Promise<Detached> {
  const state = daemonState(home)
  if (state.running) throw alreadyRunning(state.info, state.pidFile)
  const logFile = serveLogPath(home)
  mkdirSync(logsDir(home), { recursive: true })
  rotateLog(logFile)
  const pidFile = pidFilePath(home)
  const fd = openSync(logFile, 'a')
  let child: Bun.Subprocess
  let from: number
  try {
    writeSync(fd, `--- ${new Date().toISOString()} orch serve --detach (home ${home}) ---\n`)
    from = fstatSync(fd).size
    child = Bun.spawn([...selfCommand(), ...args, '--home', home, '--pid-file', pidFile], {
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
    const info = readPidFile(pidFile)
    if (info?.pid === child.pid) return { pid: child.pid, url: info.url, home, pid_file: pidFile, log_file: logFile }
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

function alreadyRunning(info: PidInfo, pidFile: string): OrchError {
  return new OrchError(`orch serve already runs in the background for this state directory: ${info.url} (pid ${info.pid})`, {
    code: 'E_ALREADY_RUNNING',
    hint: 'stop it first with `orch stop`, or use another --home',
    details: { pid: info.pid, url: info.url, pid_file: pidFile },
  })
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

export type StopResult =
  | { stopped: false; running: false; pid_file: string; stale_pid?: number }
  | { stopped: true; running: false; pid: number; url: string; forced: boolean; elapsed_ms: number; pid_file: string }

/**
 * Stop the background server of `home`: SIGTERM, up to `timeoutMs` for it to finish its work in flight and
 * exit, then SIGKILL (`onForce` is told first). Nothing running (or a stale pid file, removed) is not an error.
 */
export async function stopDaemon(home: string, timeoutMs: number, onForce?: (pid: number) => void): Promise<StopResult> {
  const state = daemonState(home)
  if (!state.running)
    return { stopped: false, running: false, pid_file: state.pidFile, ...(state.stale ? { stale_pid: state.stale.pid } : {}) }
  const { pid, url } = state.info
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
  if (readPidFile(state.pidFile)?.pid === pid) removePidFile(state.pidFile)
  return { stopped: true, running: false, pid, url, forced, elapsed_ms: Date.now() - started, pid_file: state.pidFile }
}
