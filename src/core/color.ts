/**
 * Whether output may carry ANSI colour: FORCE_COLOR (set, and not 0 or false) allows it anywhere; otherwise
 * NO_COLOR (set and not empty, no-color.org), TERM=dumb, or a stream that is not a terminal (a pipe, a
 * file) forbid it. `isatty`, not `process.stdout.isTTY`: it does not open the stream (start-up time).
 */
import { isatty } from 'node:tty'

export function colorAllowed(fd: 1 | 2, env: Record<string, string | undefined> = process.env): boolean {
  const force = env.FORCE_COLOR
  if (force !== undefined) return force !== '0' && force !== 'false'
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false
  if (env.TERM === 'dumb') return false
  return isatty(fd)
}

/** The text without ANSI escape sequences (colours, styles). */
export function stripAnsi(text: string): string {
  return text.replace(/\u001b\[[0-9;?]*[ -/]*[@-~]/g, '')
}
