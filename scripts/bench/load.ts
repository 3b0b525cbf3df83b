/**
 * HTTP load for the benchmarks, in one place: `loadTest` runs wrk when it is installed (`Bun.which('wrk')`),
 * else this file as a child process, a small wrk-like generator: `clients` keep-alive connections, each a
 * loop of fetch calls, for a fixed duration. Either way the generator runs outside the measuring process and
 * outside the measured one, and the answer has the same shape. BENCH_NO_WRK=1 uses the fallback even where
 * wrk is installed (to compare the two generators).
 *
 *   bun scripts/bench/load.ts '{"url":"http://127.0.0.1:9097/queue/submit","method":"POST","body":"{}","clients":64,"seconds":5}'
 * Last line: one JSON object {per_s, p50_ms, p99_ms, errors, requests, tool}.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface LoadSpec {
  url: string
  method?: string
  body?: string
  headers?: Record<string, string>
  clients: number
  seconds: number
  /** wrk threads (default: 2, at most one per client); the fallback runs all its clients on one thread. */
  threads?: number
}

export interface LoadResult {
  per_s: number
  p50_ms: number
  p99_ms: number
  /** Non-2xx/3xx answers plus failed connections, reads, writes and timeouts. */
  errors: number
  requests: number
  tool: 'wrk' | 'fetch'
}

/** The generator `loadTest` uses on this machine. */
export function loadTool(): LoadResult['tool'] {
  return Bun.which('wrk') && !process.env.BENCH_NO_WRK ? 'wrk' : 'fetch'
}

export async function loadTest(spec: LoadSpec): Promise<LoadResult> {
  return loadTool() === 'wrk' ? wrk(spec) : fallback(spec)
}

const UNIT_MS: Record<string, number> = { us: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** A wrk duration (`812.00us`, `1.20ms`, `2.01s`, `1.00m`) in milliseconds. */
export function wrkDuration(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim())
  if (!m) return Number.NaN
  return Number(m[1]) * (UNIT_MS[m[2] as string] as number)
}

/** The figures of wrk's `--latency` output. */
export function parseWrk(out: string): Omit<LoadResult, 'tool'> {
  const percentile = (p: string) => wrkDuration(new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out)?.[1] ?? '')
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  const socketErrors = socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0
  return {
    per_s: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? Number.NaN),
    p50_ms: percentile('50'),
    p99_ms: percentile('99'),
    errors: Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0) + socketErrors,
    requests: Number(/(\d+) requests in /.exec(out)?.[1] ?? 0),
  }
}

/** The headers to send: those given, else a JSON content type when there is a body. */
function headersOf(spec: LoadSpec): Record<string, string> {
  return spec.headers ?? (spec.body !== undefined ? { 'content-type': 'application/json' } : {})
}

/**
 * A Lua long string holding `text` verbatim: its level is one the text never closes, and it opens with a
 * newline, which Lua drops, so that a newline starting the text is kept.
 */
function luaString(text: string): string {
  let level = ''
  while (text.includes(`]${level}]`)) level += '='
  return `[${level}[\n${text}]${level}]`
}

async function wrk(spec: LoadSpec): Promise<LoadResult> {
  const dir = mkdtempSync(join(tmpdir(), 'orch-bench-wrk-'))
  try {
    const script = join(dir, 'request.lua')
    const lines = [`wrk.method = ${luaString(spec.method ?? 'GET')}`]
    if (spec.body !== undefined) lines.push(`wrk.body = ${luaString(spec.body)}`)
    for (const [name, value] of Object.entries(headersOf(spec))) lines.push(`wrk.headers[ ${luaString(name)} ] = ${luaString(value)}`)
    writeFileSync(script, `${lines.join('\n')}\n`)
    const threads = Math.max(1, Math.min(spec.threads ?? 2, spec.clients))
    const args = ['wrk', `-t${threads}`, `-c${spec.clients}`, `-d${spec.seconds}s`, '--timeout', '30s', '--latency', '-s', script, spec.url]
    const child = Bun.spawn(args, { stdout: 'pipe', stderr: 'pipe' })
    const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited])
    if (code !== 0) throw new Error(`wrk exited ${code}: ${err.trim() || out.trim()}`)
    const result = parseWrk(out)
    if (!Number.isFinite(result.per_s) || !Number.isFinite(result.p99_ms)) throw new Error(`could not read wrk's output:\n${out}`)
    return { ...result, tool: 'wrk' }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

async function fallback(spec: LoadSpec): Promise<LoadResult> {
  const child = Bun.spawn([process.execPath, '--no-env-file', import.meta.path, JSON.stringify(spec)], { stdout: 'pipe', stderr: 'pipe' })
  const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited])
  if (code !== 0) throw new Error(`load.ts exited ${code}: ${err.trim()}`)
  return JSON.parse(out.trim().split('\n').at(-1) ?? '') as LoadResult
}

/** The generator itself: `clients` loops of fetch for `seconds`; latencies of every answered call. */
async function generate(spec: LoadSpec): Promise<LoadResult> {
  const init = { method: spec.method ?? 'GET', headers: headersOf(spec), ...(spec.body !== undefined ? { body: spec.body } : {}) }
  let latencies = new Float64Array(1 << 16)
  let count = 0
  let errors = 0
  const started = performance.now()
  const deadline = started + spec.seconds * 1000
  const loop = async () => {
    while (performance.now() < deadline) {
      const t0 = performance.now()
      try {
        const response = await fetch(spec.url, init)
        await response.arrayBuffer()
        if (response.status >= 400) errors++
      } catch {
        errors++
        continue
      }
      if (count === latencies.length) {
        const grown = new Float64Array(latencies.length * 2)
        grown.set(latencies)
        latencies = grown
      }
      latencies[count++] = performance.now() - t0
    }
  }
  await Promise.all(Array.from({ length: spec.clients }, loop))
  const elapsed = (performance.now() - started) / 1000
  const sorted = latencies.subarray(0, count).sort()
  const q = (p: number) => (count === 0 ? Number.NaN : (sorted[Math.min(count - 1, Math.floor(p * count))] as number))
  return { per_s: count / elapsed, p50_ms: q(0.5), p99_ms: q(0.99), errors, requests: count, tool: 'fetch' }
}

if (import.meta.main) {
  const spec = JSON.parse(process.argv[2] ?? '') as LoadSpec
  console.log(JSON.stringify(await generate(spec)))
}
