/**
 * A real redis-server for tests: started on a free loopback port with its own directory, stopped (and its
 * directory removed) by `stop()`. `restart()` stops it with SIGKILL or a clean SHUTDOWN and starts it again
 * on the same port and directory, so a test can watch orch ride out a Redis restart. With `aof`, every write
 * is appended with `appendfsync always`, so a killed server loses nothing it acknowledged.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Subprocess } from 'bun'

export interface RedisServer {
  port: number
  url: string
  dir: string
  /** Stop (SIGKILL when `kill`, else SHUTDOWN), then start again on the same port and data. */
  restart(options?: { kill?: boolean; downMs?: number }): Promise<void>
  /** Stop it without starting again (until `start`). */
  halt(options?: { kill?: boolean }): Promise<void>
  start(): Promise<void>
  stop(): Promise<void>
}

export interface RedisServerOptions {
  /** Append-only file with fsync on every write. */
  aof?: boolean
  /** Extra `--key value` settings. */
  settings?: Record<string, string>
}

/** Whether redis-server is on the PATH; .ci/run installs it, so the suite requires it. */
export const REDIS_SERVER = Bun.which('redis-server')

export async function startRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  if (!REDIS_SERVER) throw new Error('redis-server is not installed (apt-get install redis-server); .ci/run installs it')
  const dir = mkdtempSync(join(tmpdir(), 'orch-redis-'))
  let port = 0
  let proc: Subprocess | undefined
  const argv = (p: number) => {
    const args = [REDIS_SERVER as string, '--port', String(p), '--bind', '127.0.0.1', '--dir', dir, '--save', '']
    args.push('--appendonly', options.aof ? 'yes' : 'no')
    if (options.aof) args.push('--appendfsync', 'always')
    for (const [key, value] of Object.entries(options.settings ?? {})) args.push(`--${key}`, value)
    return args
  }
  const launch = async (p: number): Promise<boolean> => {
    proc = Bun.spawn(argv(p), { stdout: 'pipe', stderr: 'pipe' })
    return await waitPort(p, proc)
  }
  for (let attempt = 0; attempt < 5 && port === 0; attempt++) {
    const candidate = await freePort()
    if (await launch(candidate)) port = candidate
  }
  if (port === 0) throw new Error('redis-server did not start on a free port in 5 attempts')
  const halt = async ({ kill = false } = {}) => {
    const running = proc
    if (!running || running.exitCode !== null) return
    if (kill) running.kill('SIGKILL')
    else {
      const client = Bun.spawn(['redis-cli', '-p', String(port), 'shutdown', 'nosave'], { stdout: 'ignore', stderr: 'ignore' })
      await client.exited
      if (client.exitCode !== 0) running.kill('SIGTERM')
    }
    await running.exited
  }
  const start = async () => {
    if (!(await launch(port))) throw new Error(`redis-server did not start again on port ${port}`)
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    halt,
    start,
    async restart({ kill = false, downMs = 0 } = {}) {
      await halt({ kill })
      if (downMs > 0) await Bun.sleep(downMs)
      await start()
    },
    async stop() {
      await halt({ kill: true })
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** A port the kernel just handed out on loopback, closed again for redis-server to take. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

/** Until redis answers PING on `port` (true), or the process exits or 5 s pass (false). */
async function waitPort(port: number, proc: Subprocess): Promise<boolean> {
  const deadline = Date.now() + 5000
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) return false
    try {
      const socket = await Bun.connect({
        hostname: '127.0.0.1',
        port,
        socket: { data() {}, open() {}, close() {}, error() {} },
      })
      socket.end()
      const ping = Bun.spawn(['redis-cli', '-p', String(port), 'ping'], { stdout: 'pipe', stderr: 'ignore' })
      const out = await new Response(ping.stdout).text()
      if (out.trim() === 'PONG') return true
    } catch {
      // not listening yet
    }
    await Bun.sleep(20)
  }
  proc.kill('SIGKILL')
  return false
}
