/**
 * How a pool runs this orch as a child (the `orch model-worker` of a llamacpp worker). From source: bun with
 * orch's entry script. From the compiled binary: node-llama-cpp, a native addon loaded from outside the
 * binary, resolves its own dependencies only when the binary runs as bun (BUN_BE_BUN=1), so the binary
 * carries its CLI as one script (embedded at build time: scripts/build.ts defines ORCH_CLI_BUNDLE), writes
 * it to `$ORCH_HOME/run/orch-cli.js` and runs that with itself in bun mode.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cliScriptPath, runDir } from '../core/home.ts'
import { isCompiled, selfCommand } from '../core/process.ts'

declare const ORCH_CLI_BUNDLE: string | undefined

export interface SelfCommand {
  argv: string[]
  env: Record<string, string>
}

export function orchCommand(home: string): SelfCommand {
  const bundle = typeof ORCH_CLI_BUNDLE === 'string' ? ORCH_CLI_BUNDLE : undefined
  if (!isCompiled() || bundle === undefined) return { argv: selfCommand(), env: {} }
  const path = cliScriptPath(home)
  if (!existsSync(path) || readFileSync(path, 'utf8') !== bundle) {
    mkdirSync(runDir(home), { recursive: true })
    writeFileSync(path, bundle, { mode: 0o600 })
  }
  // The watchdog between orch and the worker drops BUN_BE_BUN; WORKER_BUN_MODE asks it to keep bun mode.
  return { argv: [process.execPath, path], env: { BUN_BE_BUN: '1', _ORCH_WORKER_BUN_MODE: '1' } }
}
