/**
 * HTTP as a socket sees it: write bytes a library client would never send, read what comes back. The
 * first response is parsed (status, headers, a Content-Length or chunked body); the exchange ends when the
 * response is complete, the server closes, or `timeoutMs` passes (`hung`).
 */
import { connect } from 'node:net'

export interface RawResult {
  /** Undefined when the server closed without answering. */
  status: number | undefined
  headers: Record<string, string>
  body: string
  /** The server closed the connection (before or after answering). */
  closed: boolean
  /** Neither an answer nor a close within the time allowed. */
  hung: boolean
  ms: number
}

export interface RawOptions {
  timeoutMs?: number
  /** Written after the first part, `gapMs` apart (slow clients). */
  more?: Array<string | Uint8Array>
  gapMs?: number
  /** Shut the write side after sending (a body that stops short, then EOF). */
  halfClose?: boolean
  /** Keep reading after the first response until the server closes (to see whether it does). */
  untilClose?: boolean
}

export function rawRequest(port: number, data: string | Uint8Array, options: RawOptions = {}): Promise<RawResult> {
  const timeoutMs = options.timeoutMs ?? 3000
  const started = performance.now()
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    let buffer = Buffer.alloc(0)
    let settled = false
    let closed = false
    const timers: Array<ReturnType<typeof setTimeout>> = []
    const finish = (hung: boolean) => {
      if (settled) return
      settled = true
      for (const t of timers) clearTimeout(t)
      const parsed = parseResponse(buffer)
      socket.destroy()
      resolve({ ...parsed, closed, hung, ms: performance.now() - started })
    }
    socket.on('connect', () => {
      socket.write(data)
      const more = options.more ?? []
      more.forEach((part, i) => {
        timers.push(setTimeout(() => !socket.destroyed && socket.write(part), (options.gapMs ?? 0) * (i + 1)))
      })
      if (options.halfClose) timers.push(setTimeout(() => socket.end(), (options.gapMs ?? 0) * more.length + 1))
    })
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk])
      if (!options.untilClose && parseResponse(buffer).complete) finish(false)
    })
    socket.on('error', () => undefined)
    socket.on('close', () => {
      closed = true
      finish(false)
    })
    timers.push(setTimeout(() => finish(true), timeoutMs))
  })
}

function parseResponse(buffer: Buffer): { status: number | undefined; headers: Record<string, string>; body: string; complete: boolean } {
  const text = buffer.toString('latin1')
  const end = text.indexOf('\r\n\r\n')
  if (end < 0) return { status: undefined, headers: {}, body: '', complete: false }
  const [statusLine = '', ...lines] = text.slice(0, end).split('\r\n')
  const status = Number(statusLine.split(' ')[1])
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  const rest = buffer.subarray(Buffer.byteLength(text.slice(0, end + 4), 'latin1'))
  const length = headers['content-length']
  if (length !== undefined) {
    const n = Number(length)
    return { status, headers, body: rest.subarray(0, n).toString('utf8'), complete: rest.length >= n }
  }
  if (headers['transfer-encoding']?.includes('chunked')) {
    const body = dechunk(rest)
    return { status, headers, body: body ?? '', complete: body !== undefined }
  }
  return { status, headers, body: rest.toString('utf8'), complete: status === 204 || status === 304 }
}

/** The body of a complete chunked message, or undefined while the last chunk has not arrived. */
function dechunk(data: Buffer): string | undefined {
  let offset = 0
  const parts: Buffer[] = []
  for (;;) {
    const lineEnd = data.indexOf('\r\n', offset)
    if (lineEnd < 0) return undefined
    const size = Number.parseInt(data.subarray(offset, lineEnd).toString('latin1'), 16)
    if (Number.isNaN(size)) return undefined
    if (size === 0) return Buffer.concat(parts).toString('utf8')
    const start = lineEnd + 2
    if (data.length < start + size + 2) return undefined
    parts.push(data.subarray(start, start + size))
    offset = start + size + 2
  }
}

/** Descriptors this process holds open (Linux). */
export async function openDescriptors(): Promise<number> {
  const { readdirSync } = await import('node:fs')
  return readdirSync('/proc/self/fd').length
}
