/**
 * A real Prometheus for tests (Debian's `prometheus` package; .ci/run installs it): started on a free
 * loopback port with the given prometheus.yml and its own data directory, both removed by `stop()`.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Subprocess } from 'bun'

export const PROMETHEUS = Bun.which('prometheus')
export const PROMTOOL = Bun.which('promtool')

export interface PrometheusServer {
  url: string
  port: number
  dir: string
  /** The instant vector of `query`, as the HTTP API answers it. */
  query(query: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>>
  stop(): Promise<void>
}

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

/** `promtool check config` of a file: its exit code and what it printed. */
export async function promtoolCheckConfig(file: string): Promise<{ code: number; output: string }> {
  if (!PROMTOOL) throw new Error('promtool is not installed (apt-get install prometheus); .ci/run installs it')
  const proc = Bun.spawn([PROMTOOL, 'check', 'config', file], { stdout: 'pipe', stderr: 'pipe' })
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  return { code, output: `${out}${err}` }
}

/**
 * Starts Prometheus with the prometheus.yml `config` makes, given the server's own directory (where
 * `files`, e.g. a token file, are written first).
 */
export async function startPrometheus(config: (dir: string) => string, files: Record<string, string> = {}): Promise<PrometheusServer> {
  if (!PROMETHEUS) throw new Error('prometheus is not installed (apt-get install prometheus); .ci/run installs it')
  const dir = mkdtempSync(join(tmpdir(), 'orch-prometheus-'))
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text, { mode: 0o600 })
  writeFileSync(join(dir, 'prometheus.yml'), config(dir))
  let proc: Subprocess | undefined
  let port = 0
  for (let attempt = 0; attempt < 5 && port === 0; attempt++) {
    const candidate = await freePort()
    proc = Bun.spawn(
      [
        PROMETHEUS,
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${candidate}`,
      ],
      { stdout: 'ignore', stderr: 'pipe' },
    )
    if (await ready(candidate, proc)) port = candidate
  }
  if (port === 0 || !proc) {
    rmSync(dir, { recursive: true, force: true })
    throw new Error('prometheus did not start on a free port in 5 attempts')
  }
  const running = proc
  const url = `http://127.0.0.1:${port}`
  return {
    url,
    port,
    dir,
    async query(query) {
      const response = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(query)}`)
      const body = (await response.json()) as { data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } }
      return body.data.result
    },
    async stop() {
      if (running.exitCode === null) {
        running.kill('SIGTERM')
        await running.exited
      }
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** Until /-/ready answers 200 (true), or the process exits or 15 s pass (false). */
async function ready(port: number, proc: Subprocess): Promise<boolean> {
  const deadline = Date.now() + 15_000
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) return false
    try {
      if ((await fetch(`http://127.0.0.1:${port}/-/ready`)).status === 200) return true
    } catch {
      // not listening yet
    }
    await Bun.sleep(50)
  }
  proc.kill('SIGKILL')
  return false
}
