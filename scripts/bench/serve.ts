/**
 * orch serve over HTTP, against baselines measured in the same run on the same machine:
 *  - submit_per_s / submit_p99_ms: durable POST /queue/submit (synchronous FULL: fsync'd) from 64 concurrent
 *    keep-alive clients, vs echo_per_s: a bare Bun.serve handler driven by the same client.
 *    Goals: submit_per_s ≥ 30,000 and ≥ 0.5 × echo_per_s.
 *  - proxy_overhead_p50_ms / _p99_ms: POST /api/chat through orch (cache off) minus the same call straight to
 *    the backend (the Ollama test double), one request at a time, interleaved. Goal: p50 < 1 ms.
 * Tasks submitted are executed meanwhile against the test double, as in real use (BENCH_NO_RUN=1: they only
 * queue, to see the submission path alone). Servers run in child processes; this process only generates load.
 * Last line: one JSON object. Usage: bun scripts/bench/serve.ts [--seconds 5] [--clients 64]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { spawnServer, stopAll } from './servers/spawn.ts'

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    seconds: { type: 'string', default: '5' },
    clients: { type: 'string', default: '64' },
    requests: { type: 'string', default: '2000' },
  },
})
const SECONDS = Number(values.seconds)
const CLIENTS = Number(values.clients)
const ROOT = resolve(import.meta.dir, '../..')

const body = JSON.stringify({ type: 'generate', model: 'llama3.2', payload: { model: 'llama3.2', prompt: 'hello' } })

/** CLIENTS loops posting `body` for SECONDS; throughput and latency quantiles. */
async function load(url: string): Promise<{ perSecond: number; p50: number; p99: number }> {
  const latencies: number[] = []
  const deadline = performance.now() + SECONDS * 1000
  let count = 0
  const loop = async () => {
    while (performance.now() < deadline) {
      const started = performance.now()
      const response = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json' } })
      await response.arrayBuffer()
      if (response.status !== 202) throw new Error(`${url} answered ${response.status}`)
      latencies.push(performance.now() - started)
      count++
    }
  }
  const started = performance.now()
  await Promise.all(Array.from({ length: CLIENTS }, loop))
  const elapsed = (performance.now() - started) / 1000
  latencies.sort((a, b) => a - b)
  return { perSecond: count / elapsed, p50: q(latencies, 0.5), p99: q(latencies, 0.99) }
}

const q = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number

async function proxyOverhead(
  orchUrl: string,
  fakeUrl: string,
  requests: number,
): Promise<{ p50: number; p99: number; direct50: number; orch50: number }> {
  const chat = (i: number) =>
    JSON.stringify({ model: 'llama3.2', stream: false, messages: [{ role: 'user', content: `q${i}` }], options: { temperature: 0.7 } })
  const once = async (base: string, i: number) => {
    const started = performance.now()
    const response = await fetch(`${base}/api/chat`, { method: 'POST', body: chat(i), headers: { 'content-type': 'application/json' } })
    await response.arrayBuffer()
    if (response.status !== 200) throw new Error(`${base}/api/chat answered ${response.status}`)
    return performance.now() - started
  }
  const direct: number[] = []
  const viaOrch: number[] = []
  for (let i = 0; i < 200; i++) await once(orchUrl, i) // warm-up (JIT, connections, model loaded)
  for (let i = 0; i < requests; i++) {
    direct.push(await once(fakeUrl, i))
    viaOrch.push(await once(orchUrl, i))
  }
  direct.sort((a, b) => a - b)
  viaOrch.sort((a, b) => a - b)
  return {
    p50: q(viaOrch, 0.5) - q(direct, 0.5),
    p99: q(viaOrch, 0.99) - q(direct, 0.99),
    direct50: q(direct, 0.5),
    orch50: q(viaOrch, 0.5),
  }
}

const home = mkdtempSync(join(tmpdir(), 'orch-bench-serve-'))
try {
  const { url: fakeUrl } = await spawnServer([join(ROOT, 'scripts/bench/servers/fake-ollama.ts')], ROOT)
  writeFileSync(
    join(home, 'orch.yaml'),
    [
      'backends:',
      `  - { name: fake, type: ollama, url: "${process.env.BENCH_NO_RUN ? 'http://127.0.0.1:9' : fakeUrl}", concurrency: 8 }`,
      'runtime: { ollama: { concurrency: 8 } }',
      'logging: { level: error }',
      // The bench queues more than a tenant's default bound; it measures throughput, not the bound.
      'tasks: { synchronous: FULL, max_queued: 0, max_queued_per_tenant: 0 }',
      'infrastructure_system:',
      '  llm_orchestration: { caching: { enabled: false } }',
      '',
    ].join('\n'),
  )
  const { url: orchUrl } = await spawnServer(
    [join(ROOT, 'commands/index.ts'), 'serve', '--port', '0', '--json', '--home', join(home, '.orch')],
    home,
  )
  const { url: echoUrl } = await spawnServer([join(ROOT, 'scripts/bench/servers/echo.ts')], ROOT)

  // Proxy overhead first: afterwards the submitted backlog keeps the server busy running tasks.
  // BENCH_NO_RUN=1 (diagnosis): orch's backend is a closed port, so submitted tasks only queue; no proxy figures.
  const proxy = process.env.BENCH_NO_RUN
    ? { p50: Number.NaN, p99: Number.NaN, direct50: Number.NaN, orch50: Number.NaN }
    : await proxyOverhead(orchUrl, fakeUrl, Number(values.requests))
  console.log(
    `/api/chat direct p50 ${proxy.direct50.toFixed(3)} ms, through orch p50 ${proxy.orch50.toFixed(3)} ms: overhead p50 ${proxy.p50.toFixed(3)} ms, p99 ${proxy.p99.toFixed(3)} ms`,
  )
  await load(`${echoUrl}/`) // warm-up of the client itself
  const echo = await load(`${echoUrl}/`)
  const submit = await load(`${orchUrl}/queue/submit`)
  console.log(`echo (bare Bun.serve): ${Math.round(echo.perSecond)} req/s, p99 ${echo.p99.toFixed(2)} ms`)
  console.log(
    `POST /queue/submit (fsync'd): ${Math.round(submit.perSecond)} req/s (×${(submit.perSecond / echo.perSecond).toFixed(2)} of echo), p50 ${submit.p50.toFixed(2)} ms, p99 ${submit.p99.toFixed(2)} ms`,
  )
  const r = (n: number, d = 3) => Number(n.toPrecision(d))
  console.log(
    JSON.stringify({
      submit_per_s: Math.round(submit.perSecond),
      echo_per_s: Math.round(echo.perSecond),
      submit_echo_ratio: r(submit.perSecond / echo.perSecond),
      submit_p50_ms: r(submit.p50),
      submit_p99_ms: r(submit.p99),
      proxy_overhead_p50_ms: r(proxy.p50),
      proxy_overhead_p99_ms: r(proxy.p99),
      clients: CLIENTS,
      seconds: SECONDS,
    }),
  )
} finally {
  await stopAll()
  rmSync(home, { recursive: true, force: true })
}
