/**
 * Process-group and port helpers for pool workers. Every worker is the leader of its own process group
 * (spawned detached), so a signal to `-pgid` reaches the server and anything it started.
 */
import { readdirSync } from 'node:fs'
import { hasExited, procStat } from '../core/process.ts'

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export { waitOrAbort } from '../core/wait.ts'

/** One health request: true on a 2xx within `timeoutMs`. */
export async function ping(url: string, timeoutMs: number): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
    await res.body?.cancel()
    return res.ok
  } catch {
    return false
  }
}

/** Signal a whole group; false when it is already gone. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal)
    return true
  } catch {
    return false
  }
}

/**
 * Is any process of the group left? Zombies do not count: a leader whose parent is gone waits for init to
 * reap it, which can take seconds, and signal 0 still reaches it. Without /proc, signal 0 decides.
 */
export function groupAlive(pgid: number): boolean {
  if (!signalGroup(pgid, 0 as unknown as NodeJS.Signals)) return false
  let entries: string[]
  try {
    entries = readdirSync('/proc')
  } catch {
    return true
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    const stat = procStat(Number(entry))
    if (stat && stat.pgrp === pgid && !hasExited(stat)) return true
  }
  return false
}

/** SIGTERM to the group, SIGKILL after `graceMs` if any of it is left; resolves when the group is gone. */
export async function terminateGroup(pgid: number, graceMs: number): Promise<void> {
  if (!signalGroup(pgid, 'SIGTERM')) return
  const deadline = Date.now() + graceMs
  while (Date.now() < deadline) {
    if (!groupAlive(pgid)) return
    await sleep(50)
  }
  signalGroup(pgid, 'SIGKILL')
  for (let i = 0; i < 40 && groupAlive(pgid); i++) await sleep(50)
}

/** Can we bind 127.0.0.1:port right now? */
export function isPortFree(port: number): boolean {
  try {
    const listener = Bun.listen({ hostname: '127.0.0.1', port, socket: { data() {} } })
    listener.stop(true)
    return true
  } catch {
    return false
  }
}

/** A port the OS considers free now. */
export function ephemeralPort(): number {
  const listener = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  const port = listener.port
  listener.stop(true)
  return port
}

/** `preferred` or the next free port above it, skipping `taken`; an OS-chosen one without a preference. */
export function pickPort(preferred: number | undefined, taken: Set<number>): number {
  if (preferred === undefined) {
    for (let i = 0; i < 20; i++) {
      const port = ephemeralPort()
      if (!taken.has(port)) return port
    }
    throw new Error('no free port found')
  }
  for (let port = preferred; port <= 65_535; port++) {
    if (!taken.has(port) && isPortFree(port)) return port
  }
  throw new Error(`no free port at or above ${preferred}`)
}
