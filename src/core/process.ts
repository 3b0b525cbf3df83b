/**
 * Other processes, as far as this one can tell: whether a pid is alive, and what Linux says of it in
 * `/proc/<pid>/` (its state letter, process group, command line). Where there is no /proc (macOS), only the
 * signal-0 probe answers.
 */
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface ProcStat {
  /** R, S, D, T, Z (zombie), X (dead), … */
  state: string
  /** Process group id. */
  pgrp: number
}

/** State and process group from /proc/<pid>/stat; undefined where there is no /proc or the pid is gone. */
export function procStat(pid: number): ProcStat | undefined {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  // The fields after the command name, which is in parentheses and may itself hold spaces and parentheses.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
  return { state: fields[0] ?? '', pgrp: Number(fields[2]) }
}

/** Whether /proc says the process has exited: Z (a zombie, waiting to be reaped) or X (dead). */
export const hasExited = (stat: ProcStat | undefined): boolean => stat?.state === 'Z' || stat?.state === 'X'

/**
 * Whether a process exists and has not exited. A zombie (exited, not yet reaped by its parent) is gone,
 * although signal 0 still reaches it. EPERM: it exists but belongs to another user, so it is alive.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
  return !hasExited(procStat(pid))
}

/** argv of a process from /proc/<pid>/cmdline (empty arguments kept); undefined where there is no /proc or it is gone. */
export function readCmdline(pid: number): string[] | undefined {
  let raw: string
  try {
    raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
  } catch {
    return undefined
  }
  const args = raw.split('\0')
  // Every argument ends with a NUL: the last element of the split is the empty string after it.
  if (args.at(-1) === '') args.pop()
  return args
}

/** Is this process the compiled orch binary (its modules in Bun's embedded file system), not bun running the source? */
export function isCompiled(): boolean {
  return Bun.main.startsWith('/$bunfs/') || Bun.main.includes('~BUN') || !basename(process.execPath).startsWith('bun')
}

/** orch's entry script, when it runs from source (whichever script bun started: the CLI, a test, a benchmark). */
const ENTRY = fileURLToPath(new URL('../../commands/index.ts', import.meta.url))

/** The command line that starts this same orch: the compiled binary alone, or bun + flags + the entry script. */
export function selfCommand(): string[] {
  return isCompiled() ? [process.execPath] : [process.execPath, '--no-env-file', ENTRY]
}
