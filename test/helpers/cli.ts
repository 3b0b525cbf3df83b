/**
 * Spawn the CLI as a user would, with a fixed environment: NO_COLOR=1, TZ=Etc/UTC, a temp ORCH_HOME, and no
 * ORCH_* variables leaking in from the developer's shell. Set ORCH_TEST_BINARY=dist/orch to run the same
 * specs against the compiled binary.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

export const ROOT = resolve(import.meta.dir, '../..')
const ENTRY = join(ROOT, 'commands/index.ts')

export interface CliResult {
  code: number
  stdout: string
  stderr: string
  /** stdout parsed as JSON (throws with the raw text if it is not JSON). */
  json: <T = any>() => T
}

export interface CliOptions {
  cwd?: string
  env?: Record<string, string>
  stdin?: string
}

function baseEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith('ORCH_') && key !== 'FORCE_COLOR') env[key] = value
  }
  return { ...env, NO_COLOR: '1', TZ: 'Etc/UTC', ...extra }
}

/** Start the CLI and return the running process (stdout and stderr piped), for commands that run until stopped. */
export function spawnCli(args: string[], options: CliOptions = {}) {
  const binary = process.env.ORCH_TEST_BINARY
  const cmd = binary ? [resolve(ROOT, binary), ...args] : [process.execPath, '--no-env-file', ENTRY, ...args]
  return Bun.spawn(cmd, {
    cwd: options.cwd ?? ROOT,
    env: baseEnv(options.env),
    stdin: options.stdin === undefined ? 'ignore' : new TextEncoder().encode(options.stdin),
    stdout: 'pipe',
    stderr: 'pipe',
  })
}

export async function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const proc = spawnCli(args, options)
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  return {
    code,
    stdout,
    stderr,
    json: () => {
      try {
        return JSON.parse(stdout)
      } catch {
        throw new Error(`stdout is not JSON (exit ${code}):\n${stdout}\nstderr:\n${stderr}`)
      }
    },
  }
}

/** A temp directory removed when the returned disposer runs (use in afterEach/afterAll). */
export function tempDir(prefix = 'orch-test-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix))
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) }
}
