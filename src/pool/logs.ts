/**
 * Worker logs: `$ORCH_HOME/logs/<pool>/<worker>.log`, opened for append and handed to the child as its
 * stdout and stderr. Size-capped: past 10 MiB the file is copied to `.1` (older ones shift to `.2`, `.3`)
 * and truncated in place; the child's O_APPEND descriptor keeps writing at the new end.
 */
import { mkdirSync, openSync } from 'node:fs'
import { join } from 'node:path'
import { LOG_KEEP, LOG_MAX_BYTES, rotateLog } from '../core/log-rotate.ts'

/** A file descriptor open for append, directories created. */
export function openWorkerLog(path: string): number {
  mkdirSync(join(path, '..'), { recursive: true })
  return openSync(path, 'a')
}

/** Rotate a worker log in place (its child keeps the descriptor); true when it did. */
export function rotateWorkerLog(path: string, maxBytes = LOG_MAX_BYTES, keep = LOG_KEEP): boolean {
  return rotateLog(path, maxBytes, keep, true)
}
