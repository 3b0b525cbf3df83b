/**
 * Size-capped log files (serve.log, worker logs): past `maxBytes` the file becomes `.1`, older ones shift
 * to `.2` … `.keep`, and the oldest is dropped.
 */
import { copyFileSync, existsSync, renameSync, rmSync, statSync, truncateSync } from 'node:fs'

export const LOG_MAX_BYTES = 10 * 1024 * 1024
export const LOG_KEEP = 3

/**
 * Rotate when over `maxBytes`; true when it did. `inPlace`: copy to `.1` and truncate, for a file a live
 * child still writes through an O_APPEND descriptor (it keeps writing at the new end); otherwise rename.
 */
export function rotateLog(file: string, maxBytes = LOG_MAX_BYTES, keep = LOG_KEEP, inPlace = false): boolean {
  let size: number
  try {
    size = statSync(file).size
  } catch {
    return false
  }
  if (size <= maxBytes) return false
  rmSync(`${file}.${keep}`, { force: true })
  for (let i = keep - 1; i >= 1; i--) {
    if (existsSync(`${file}.${i}`)) renameSync(`${file}.${i}`, `${file}.${i + 1}`)
  }
  if (inPlace) {
    copyFileSync(file, `${file}.1`)
    truncateSync(file, 0)
  } else renameSync(file, `${file}.1`)
  return true
}
