/**
 * How to run the watchdog (src/pool/watchdog.ts) as a process. From source: `bun watchdog.ts`. From the
 * compiled orch binary there is no watchdog.ts on disk and no bun: the binary carries the watchdog's source
 * (a text import), writes it to `$ORCH_HOME/run/pool-watchdog.ts`, and runs it with itself in bun mode
 * (BUN_BE_BUN=1; the watchdog drops that variable before it starts the worker).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { runDir, watchdogScriptPath } from '../core/home.ts'
// @ts-expect-error: a text import: Bun hands over the file's source as a string, embedded in compiled binaries.
import source from './watchdog.ts' with { type: 'text' }

const WATCHDOG = fileURLToPath(new URL('./watchdog.ts', import.meta.url))

/** Is this the compiled binary (modules live in Bun's embedded file system)? */
export const COMPILED = WATCHDOG.includes('$bunfs') || WATCHDOG.includes('~BUN')

export interface WatchdogCommand {
  argv: string[]
  env: Record<string, string>
}

export function watchdogCommand(home: string): WatchdogCommand {
  if (!COMPILED) return { argv: [process.execPath, WATCHDOG], env: {} }
  const path = watchdogScriptPath(home)
  const text = String(source)
  if (!existsSync(path) || readFileSync(path, 'utf8') !== text) {
    mkdirSync(runDir(home), { recursive: true })
    writeFileSync(path, text)
  }
  return { argv: [process.execPath, path], env: { BUN_BE_BUN: '1' } }
}
