/**
 * Log files under `$ORCH_HOME/logs/`: `serve.log` (the background `orch serve`) and, once pools run,
 * `<pool>/<worker>.log`. A service is named `serve` or `pool/worker`. Reading the tail works from the end of
 * the file, so a large log costs no more than the lines asked for; following polls the size (fs.watch misses
 * events on some filesystems) and starts over when the file is rotated or truncated.
 */
import { closeSync, existsSync, fstatSync, openSync, readdirSync, readSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { logsDir, serveLogPath, workerLogPath } from '../core/home.ts'
import { waitOrAbort } from '../core/wait.ts'

export const SERVE_SERVICE = 'serve'

/** Services that have a log: `serve` (when serve.log exists) and `pool/worker` for each worker log. */
export function listServices(home: string): string[] {
  const dir = logsDir(home)
  const services: string[] = []
  if (existsSync(serveLogPath(home))) services.push(SERVE_SERVICE)
  let entries: string[] = []
  try {
    entries = readdirSync(dir).sort()
  } catch {
    return services
  }
  for (const pool of entries) {
    let workers: string[]
    try {
      if (!statSync(join(dir, pool)).isDirectory()) continue
      workers = readdirSync(join(dir, pool)).sort()
    } catch {
      continue
    }
    for (const file of workers) if (file.endsWith('.log')) services.push(`${pool}/${file.slice(0, -'.log'.length)}`)
  }
  return services
}

/** The file of a service name; undefined when the name is not of a form that names one. */
export function serviceLogPath(home: string, service: string): string | undefined {
  if (service === SERVE_SERVICE) return serveLogPath(home)
  const match = /^([A-Za-z0-9_.-]+)\/([A-Za-z0-9_.-]+)$/.exec(service)
  if (!match || [match[1], match[2]].some((part) => part === '.' || part === '..')) return undefined
  return workerLogPath(home, match[1] as string, match[2] as string)
}

export interface Tail {
  lines: string[]
  /** Byte offset just past what was read: where following continues. */
  end: number
}

/** The last `count` lines of a file (a last line without a newline counts), reading backwards in chunks. */
export function readTail(file: string, count: number): Tail {
  const fd = openSync(file, 'r')
  try {
    const end = fstatSync(fd).size
    if (count <= 0 || end === 0) return { lines: [], end }
    const chunks: Buffer[] = []
    let position = end
    let newlines = 0
    // One newline more than lines wanted: the one before the first line shown (the file's last byte may be one).
    while (position > 0 && newlines <= count) {
      const size = Math.min(65_536, position)
      position -= size
      const chunk = Buffer.alloc(size)
      readSync(fd, chunk, 0, size, position)
      chunks.unshift(chunk)
      for (const byte of chunk) if (byte === 10) newlines++
    }
    const text = Buffer.concat(chunks).toString('utf8')
    const lines = text.split('\n')
    if (lines.at(-1) === '') lines.pop()
    return { lines: lines.slice(-count), end }
  } finally {
    closeSync(fd)
  }
}

/** The last lines (blank ones skipped) written to a file since byte `from`: a failed start's output. */
export function readSince(file: string, from: number, count: number): string[] {
  try {
    const fd = openSync(file, 'r')
    try {
      const end = fstatSync(fd).size
      const start = Math.max(from, end - 65_536)
      if (end <= start) return []
      const buffer = Buffer.alloc(end - start)
      readSync(fd, buffer, 0, buffer.length, start)
      return buffer
        .toString('utf8')
        .split('\n')
        .filter((line) => line.trim() !== '')
        .slice(-count)
    } finally {
      closeSync(fd)
    }
  } catch {
    return []
  }
}

export interface FollowOptions {
  /** Byte offset to start from (readTail's `end`); 0 when the file does not exist yet. */
  from: number
  /** The file's inode when `from` was read; default: its inode now. */
  inode?: number | undefined
  intervalMs?: number
  signal: AbortSignal
  onLines: (lines: string[]) => void
  /** Called when the file was replaced (rotated) or cut (truncated); following goes on from its start. */
  onRestart?: (reason: 'rotated' | 'truncated') => void
  /**
   * Most bytes read at once; a line longer than this is handed over in pieces rather than held without
   * bound. Default: everything appended since the last read, whole lines only.
   */
  chunkBytes?: number
}

/** Call `onLines` with each batch of complete lines appended to `file`, until the signal aborts. */
export async function followFile(file: string, options: FollowOptions): Promise<void> {
  const { signal, onLines, chunkBytes } = options
  let offset = options.from
  let inode = 'inode' in options ? options.inode : inodeOf(file)
  let partial = ''
  // One decoder across reads: a character split between two reads is put back together.
  let decoder = new TextDecoder()
  const interval = options.intervalMs ?? 200
  while (!signal.aborted) {
    let size = -1
    let current: number | undefined
    try {
      const stat = statSync(file)
      size = stat.size
      current = stat.ino
    } catch {
      // Not there (yet, or between rotation steps): wait for it.
    }
    if (size >= 0 && (current !== inode || size < offset)) {
      if (inode !== undefined) options.onRestart?.(current !== inode ? 'rotated' : 'truncated')
      offset = 0
      partial = ''
      decoder = new TextDecoder()
      inode = current
    }
    while (size > offset && !signal.aborted) {
      const fd = openSync(file, 'r')
      try {
        const buffer = Buffer.alloc(Math.min(chunkBytes ?? Number.POSITIVE_INFINITY, size - offset))
        const read = readSync(fd, buffer, 0, buffer.length, offset)
        if (read <= 0) break
        offset += read
        const lines = (partial + decoder.decode(buffer.subarray(0, read), { stream: true })).split('\n')
        partial = lines.pop() ?? ''
        if (chunkBytes !== undefined && partial.length > chunkBytes) {
          lines.push(partial)
          partial = ''
        }
        if (lines.length > 0) onLines(lines)
      } finally {
        closeSync(fd)
      }
    }
    await waitOrAbort(interval, signal)
  }
}

function inodeOf(file: string): number | undefined {
  try {
    return statSync(file).ino
  } catch {
    return undefined
  }
}
