/**
 * Logs over HTTP (docs/http-api.md#pools-and-logs): `GET /logs/sources` lists what can be read — `serve`
 * (the background orch serve's `logs/serve.log`) and each worker of a configured pool — and
 * `GET /logs?source=&lines=` answers the last lines of one, or with `follow=1` streams them and then every
 * line appended, as Server-Sent Events (like `orch logs -f`). A source is a name from that list, never a
 * path: the file is the one the list names. Only the end of a file is read (at most TAIL_BYTES), however
 * large it is; following reads what was appended, in bounded chunks, and starts over at a rotation.
 */
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs'
import { serveLogPath, workerLogPath } from '../../core/home.ts'
import { followFile, listServices, SERVE_SERVICE } from '../../daemon/logfile.ts'
import { type AppDeps, httpError, json, type Route, type RouteContext } from '../http.ts'

export const DEFAULT_LINES = 100
export const MAX_LINES = 2000
/** The most of a file's end read for a tail: longer lines are cut there. */
export const TAIL_BYTES = 1024 * 1024
/** The most read from a followed file at once. */
const CHUNK_BYTES = 256 * 1024
const FOLLOW_POLL_MS = 250
const HEARTBEAT_MS = 15_000

export interface LogSource {
  source: string
  kind: 'serve' | 'worker'
  pool: string | null
  /** Whether the file exists now (a worker that never started, a serve in the foreground: not yet). */
  exists: boolean
}

interface KnownSource extends LogSource {
  file: string
}

const HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
}

export function logRoutes(): Route[] {
  return [
    { method: 'GET', path: '/logs/sources', handler: ({ deps }) => json({ sources: sourcesOf(deps).map(({ file: _, ...s }) => s) }) },
    { method: 'GET', path: '/logs', long: true, handler: readLog },
  ]
}

/** serve (with a state directory), every worker the supervisor runs, and worker logs of configured pools left on disk. */
function sourcesOf(deps: AppDeps): KnownSource[] {
  const sources: KnownSource[] = []
  const { home } = deps
  if (home !== undefined) {
    const file = serveLogPath(home)
    sources.push({ source: SERVE_SERVICE, kind: 'serve', pool: null, exists: exists(file), file })
  }
  const seen = new Set<string>()
  for (const worker of deps.pools?.workers ?? []) {
    if (seen.has(worker.id)) continue
    seen.add(worker.id)
    const file = worker.settings.logPath
    sources.push({ source: worker.id, kind: 'worker', pool: worker.settings.pool.name, exists: exists(file), file })
  }
  if (home !== undefined) {
    // Workers a scale-down removed keep their logs: still a configured pool's.
    const pools = new Set(deps.config.pools.map((p) => p.name))
    for (const service of listServices(home)) {
      const [pool, id] = service.split('/')
      if (pool === undefined || id === undefined || !pools.has(pool) || seen.has(id)) continue
      seen.add(id)
      sources.push({ source: id, kind: 'worker', pool, exists: true, file: workerLogPath(home, pool, id) })
    }
  }
  return sources
}

function exists(file: string): boolean {
  try {
    return statSync(file).isFile()
  } catch {
    return false
  }
}

function readLog(ctx: RouteContext): Response {
  const params = ctx.url.searchParams
  const sources = sourcesOf(ctx.deps)
  const name = params.get('source') ?? ''
  const known = sources.find((s) => s.source === name)
  if (!known) {
    const list = sources.map((s) => s.source).join(', ') || 'none'
    const said = name === '' ? 'source: required' : `source: no log named "${name.slice(0, 80)}"`
    throw httpError(400, `${said} (known: ${list}; GET /logs/sources lists them)`, 'E_LOG_SOURCE', { field: 'source' })
  }
  const lines = parseLines(params.get('lines'))
  const follow = parseFollow(params.get('follow'))
  const tail = readTailBounded(known.file, lines)
  if (!follow) {
    return json({
      source: known.source,
      kind: known.kind,
      pool: known.pool,
      exists: tail.exists,
      lines: tail.lines,
      truncated: tail.truncated,
    })
  }
  return followResponse(ctx, known, tail)
}

function parseLines(raw: string | null): number {
  if (raw === null) return DEFAULT_LINES
  const n = Number(raw)
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n)) {
    throw httpError(
      400,
      `lines: expected a whole number of lines (at most ${MAX_LINES}), got ${JSON.stringify(raw.slice(0, 40))}`,
      'E_VALIDATION',
      {
        field: 'lines',
      },
    )
  }
  // More than the cap is not an error: the answer is the last MAX_LINES.
  return Math.min(n, MAX_LINES)
}

function parseFollow(raw: string | null): boolean {
  if (raw === null || raw === '0' || raw === 'false') return false
  if (raw === '1' || raw === 'true' || raw === '') return true
  throw httpError(400, `follow: expected 1 or 0, got ${JSON.stringify(raw.slice(0, 40))}`, 'E_VALIDATION', { field: 'follow' })
}

export interface BoundedTail {
  exists: boolean
  lines: string[]
  /** Where following continues: the file's size when it was read. */
  end: number
  inode: number | undefined
  /** Lines older than these were not read (past TAIL_BYTES), or the first shown was cut. */
  truncated: boolean
}

/** The last `count` lines of `file`, reading at most `maxBytes` from its end. */
export function readTailBounded(file: string, count: number, maxBytes = TAIL_BYTES): BoundedTail {
  let fd: number
  try {
    fd = openSync(file, 'r')
  } catch {
    return { exists: false, lines: [], end: 0, inode: undefined, truncated: false }
  }
  try {
    const stat = fstatSync(fd)
    const end = stat.size
    if (count <= 0 || end === 0) return { exists: true, lines: [], end, inode: stat.ino, truncated: false }
    const start = Math.max(0, end - maxBytes)
    const buffer = Buffer.alloc(end - start)
    const read = readSync(fd, buffer, 0, buffer.length, start)
    const lines = buffer.subarray(0, read).toString('utf8').split('\n')
    if (lines.at(-1) === '') lines.pop()
    // Read from the middle of the file: the first piece is the end of a line begun before.
    const cut = start > 0
    if (cut && lines.length > 1) lines.shift()
    const shown = lines.slice(-count)
    return { exists: true, lines: shown, end, inode: stat.ino, truncated: cut && shown.length < count }
  } finally {
    closeSync(fd)
  }
}

function followResponse(ctx: RouteContext, source: KnownSource, tail: BoundedTail): Response {
  const { signal } = ctx.request
  const encoder = new TextEncoder()
  const stop = new AbortController()
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      const send = (text: string) => {
        if (stop.signal.aborted) return
        try {
          controller.enqueue(encoder.encode(text))
        } catch {
          stop.abort()
        }
      }
      const lines = (batch: string[]) => send(`event: lines\ndata: ${JSON.stringify({ lines: batch })}\n\n`)
      send(`retry: 2000\n: orch log ${source.source}\n\n`)
      lines(tail.lines)
      const heartbeat = setInterval(() => send(': ping\n\n'), HEARTBEAT_MS)
      const end = () => {
        stop.abort()
        clearInterval(heartbeat)
        try {
          controller.close()
        } catch {
          // Already closed.
        }
      }
      if (signal.aborted) end()
      else signal.addEventListener('abort', end, { once: true })
      // Complete lines appended after the tail, at most CHUNK_BYTES at a time.
      void followFile(source.file, {
        from: tail.end,
        inode: tail.inode,
        intervalMs: FOLLOW_POLL_MS,
        chunkBytes: CHUNK_BYTES,
        signal: stop.signal,
        onLines: lines,
        onRestart: (reason) => send(`event: rotated\ndata: ${JSON.stringify({ reason })}\n\n`),
      }).finally(end)
    },
    cancel() {
      stop.abort()
    },
  })
  return new Response(body, { headers: HEADERS })
}
