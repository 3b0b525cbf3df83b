/**
 * The child-side watchdog that keeps workers from outliving orch, even when orch is SIGKILLed:
 *   bun src/pool/watchdog.ts --parent PID --run RUN_ID --worker ID --grace MS -- argv...
 * It is the leader of the worker's process group (the supervisor spawns it detached), runs the worker as
 * its child, and exits with the worker's code. Every 500 ms it checks that orch (--parent) is alive; when it
 * is gone it sends SIGTERM to the worker, then SIGKILL to the whole group after --grace ms.
 * `--run` and `--worker` are not read here: they mark the command line, so a later run can tell a stale
 * worker of ours from an unrelated process that reuses the pid.
 */

const POLL_MS = 500

export interface WatchdogArgs {
  parent: number
  graceMs: number
  argv: string[]
}

export function parseWatchdogArgs(args: string[]): WatchdogArgs {
  const split = args.indexOf('--')
  if (split < 0 || split === args.length - 1) throw new Error('watchdog: expected -- followed by the worker command')
  const flags = args.slice(0, split)
  const flag = (name: string) => {
    const at = flags.indexOf(name)
    return at >= 0 ? flags[at + 1] : undefined
  }
  const parent = Number(flag('--parent'))
  if (!Number.isInteger(parent) || parent <= 0) throw new Error('watchdog: --parent PID is required')
  return { parent, graceMs: Number(flag('--grace') ?? 5000), argv: args.slice(split + 1) }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function killGroup(signal: NodeJS.Signals): void {
  try {
    process.kill(-process.pid, signal)
  } catch {
    // The group is already gone.
  }
}

/** Set in a worker's environment: run the worker in bun mode as well (BUN_BE_BUN=1). */
export const WORKER_BUN_MODE = '_ORCH_WORKER_BUN_MODE'

export async function runWatchdog(args: WatchdogArgs): Promise<number> {
  // BUN_BE_BUN is how the compiled orch runs this file; the worker must not inherit it, unless the worker is
  // the compiled orch running its own CLI script in bun mode too (src/pool/self-launch.ts).
  const { BUN_BE_BUN: _, [WORKER_BUN_MODE]: bunMode, ...env } = process.env
  if (bunMode === '1') env.BUN_BE_BUN = '1'
  const child = Bun.spawn(args.argv, { env, stdin: 'ignore', stdout: 'inherit', stderr: 'inherit' })
  const originalPpid = process.ppid
  let orphaned = false
  // SIGTERM to the group reaches the worker too; wait for it to finish instead of dying first.
  process.on('SIGTERM', () => {})
  process.on('SIGINT', () => {})
  const timer = setInterval(() => {
    if (orphaned) return
    // Reparenting also means orch is gone (its pid may already be reused), when orch is our parent.
    const reparented = args.parent === originalPpid && process.ppid !== originalPpid
    if (alive(args.parent) && !reparented) return
    orphaned = true
    child.kill('SIGTERM')
    setTimeout(() => killGroup('SIGKILL'), args.graceMs).unref()
  }, POLL_MS)
  const code = await child.exited
  clearInterval(timer)
  if (orphaned) killGroup('SIGKILL')
  return child.signalCode ? 128 + 9 : code
}

if (import.meta.main) {
  const code = await runWatchdog(parseWatchdogArgs(Bun.argv.slice(2)))
  process.exit(code)
}
