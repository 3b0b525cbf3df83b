/**
 * Worker logs: `$ORCH_HOME/logs/<pool>/<worker>.log`, opened for append and handed to the child as its
 * stdout and stderr. Size-capped: past 10 MiB the file is copied to `.1` (older ones shift to `.2`, `.3`)
 * and truncated in place; the child's O_APPEND descriptor keeps writing at the new end.
 */
import { copyFileSync, existsSync, mkdirSync, openSync, renameSync, statSync, truncateSync } from 'node:fs'
import { join } from 'node:path'

export const LOG_MAX_BYTES = 10 * 1024 * 1024
export const LOG_KEEP = 3

export function workerLogPath(home: string, pool: string, worker: string): string {
  return join(home, 'logs', pool, `${worker}.log`)
}

/** A file descriptor open for append, directories created. */
export function openWorkerLog(path: string): number {
  mkdirSync(join(path, '..'), { recursive: true })
  return openSync(path, 'a')
}

/** Rotate when over `maxBytes`; true when it did. */
export function rotateLog(path: string, maxBytes = LOG_MAX_BYTES, keep = LOG_KEEP): boolean {
  let size: number
  try {
    size = statSync(path).size
  } catch {
    return false
  }
  if (size <= maxBytes) return false
  for (let i = keep - 1; i >= 1; i--) {
    if (existsSync(`${path}.${i}`)) renameSync(`${path}.${i}`, `${path}.${i + 1}`)
  }
  copyFileSync(path, `${path}.1`)
  truncateSync(path, 0)
  return true
}
