/**
 * Concurrency limits through a real `orch serve`: each backend runs up to its own concurrency, so a second
 * backend doubles throughput (nothing caps the backends together, and agent_runner_concurrency caps no
 * proxied call); the effective limits and where they came from are in the start log, GET /stats, /metrics
 * and `orch status`; a request no backend can serve is told how to add one, in every dialect.
 */
import { afterAll, afterEach, describe, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { runCli, spawnCli, tempDir } from '../helpers/cli.ts'
import { type FakeServer, startFakeOllama } from '../helpers/fake-ollama.ts'
import { startFakeOpenAI } from '../helpers/fake-openai.ts'
import { startTestServe, type TestServe } from '../helpers/serve.ts'

const LATENCY_MS = 200
const REQUESTS = 16

const serves: TestServe[] = []
afterEach(async () => {
  for (const s of serves.splice(0)) await s.stop()
})

/** 16 chat requests at once through the Ollama API; the wall time until the last answer. */
async function burst(t: TestServe): Promise<number> {
  const started = performance.now()
  const responses = await Promise.all(
    Array.from({ length: REQUESTS }, (_, i) =>
      t.fetch('/api/chat', {
        method: 'POST',
        body: JSON.stringify({ model: 'llama3.2', stream: false, messages: [{ role: 'user', content: `question ${i}` }] }),
      }),
    ),
  )
  const wall = performance.now() - started
  for (const res of responses) expect(res.status).toBe(200)
  return wall
}

describe('backends add up', () => {
  test('two backends of concurrency 4 each run 4 at once and take about half the time of one (defaults elsewhere)', async () => {
    // The helper leaves runtime.ollama.concurrency (2) and agent_runner_concurrency (5) at their defaults.
    const one = await startTestServe({ fakes: [{ latencyMs: LATENCY_MS }], concurrency: 4 })
    serves.push(one)
    expect(one.config.infrastructure_system.distributed_simulation.agent_runner_concurrency).toBe(5)
    const oneWall = await burst(one)
    expect(one.fakes[0]?.stats.maxInFlight).toBe(4)

    const two = await startTestServe({ fakes: [{ latencyMs: LATENCY_MS }, { latencyMs: LATENCY_MS }], concurrency: 4 })
    serves.push(two)
    const twoWall = await burst(two)
    expect(two.fakes.map((f) => f.stats.maxInFlight)).toEqual([4, 4])
    expect(two.fakes.map((f) => f.stats.total)).toEqual([8, 8])
    // 16 calls of 200 ms: 4 rounds on one backend, 2 on two.
    expect(oneWall).toBeGreaterThanOrEqual(4 * LATENCY_MS * 0.9)
    expect(twoWall).toBeLessThanOrEqual(oneWall * 0.65)
  }, 20_000)
})

describe('no backend serves the model', () => {
  test('the 503 says how to add one, in the Ollama and OpenAI dialects', async () => {
    const closed = await startFakeOllama()
    await closed.stop()
    const t = await startTestServe({ tweak: (c) => (c.backends = [{ name: 'gone', type: 'ollama', url: closed.url }]) })
    serves.push(t)
    const advice = 'add a backend serving it under backends: in orch.yaml, or a pool under pools:'
    const body = { model: 'llama3.2', stream: false, messages: [{ role: 'user', content: 'hi' }] }
    const ollama = await t.fetch('/api/chat', { method: 'POST', body: JSON.stringify(body) })
    expect(ollama.status).toBe(503)
    const ollamaBody = (await ollama.json()) as { error: string }
    expect(ollamaBody.error).toContain('no healthy backend serves "llama3.2": none of gone answers')
    expect(ollamaBody.error).toContain(advice)
    expect(ollamaBody.error).toContain('docs/configuration.md')
    const openai = await t.fetch('/v1/chat/completions', { method: 'POST', body: JSON.stringify(body) })
    expect(openai.status).toBe(503)
    const openaiBody = (await openai.json()) as { error: { message: string } }
    expect(openaiBody.error.message).toContain(advice)
  })
})

describe('the effective limits are reported', () => {
  const dir = tempDir('orch-limits-')
  const home = join(dir.path, '.orch')
  const fakes: FakeServer[] = []
  let proc: ReturnType<typeof spawnCli> | undefined
  afterAll(async () => {
    proc?.kill('SIGTERM')
    await proc?.exited
    for (const fake of fakes) await fake.stop()
    dir.cleanup()
  })

  test('start log, GET /stats, /metrics and orch status show each backend with its concurrency and source', async () => {
    const own = await startFakeOllama()
    const shared = await startFakeOllama()
    const vllm = await startFakeOpenAI()
    fakes.push(own, shared, vllm)
    writeFileSync(
      join(dir.path, 'orch.yaml'),
      [
        'runtime: { ollama: { concurrency: 3 } }',
        'backends:',
        `  - { name: own, type: ollama, url: "${own.url}", concurrency: 6 }`,
        `  - { name: shared, type: ollama, url: "${shared.url}" }`,
        `  - { name: vllm, type: openai, url: "${vllm.url}" }`,
        'tasks: { synchronous: NORMAL }',
        'graceful_shutdown_timeout_ms: 500',
        'infrastructure_system: { performance_monitoring: { enabled: false } }',
        '',
      ].join('\n'),
    )
    const env = { ORCH_HOME: home }
    proc = spawnCli(['serve', '--port', '0', '--json', '--pid-file', join(home, 'serve.pid')], { cwd: dir.path, env })
    const { url, stderr } = await listening(proc)

    const stats = (await (await fetch(`${url}/stats`)).json()) as Record<string, any>
    expect(stats.limits).toEqual({
      backends: [
        { name: 'own', concurrency: 6, source: 'backends[].concurrency', inflight: 0 },
        { name: 'shared', concurrency: 3, source: 'runtime.ollama.concurrency', inflight: 0 },
        { name: 'vllm', concurrency: 4, source: 'default', inflight: 0 },
      ],
      task_runner: { concurrency: 5, source: 'infrastructure_system.distributed_simulation.agent_runner_concurrency' },
    })
    // The older fields stay: backends known, with a free slot, busy; and the slots they add up to.
    expect(stats).toMatchObject({ workers: 3, available: 3, busy: 0, slots: 13, slots_busy: 0 })

    const line =
      'concurrency per backend: own 6 (backends[].concurrency), shared 3 (runtime.ollama.concurrency), vllm 4 (default); durable tasks at once: 5 (agent_runner_concurrency)'
    await until(
      () => stderr().includes(line),
      () => `start log without the limits line:\n${stderr()}`,
    )

    const metrics = await (await fetch(`${url}/metrics`)).text()
    expect(metrics).toMatch(/orchestrator_concurrency_limit\{[^}]*backend="shared"\} 3\n/)
    expect(metrics).toMatch(/orchestrator_concurrency_limit\{[^}]*backend="own"\} 6\n/)
    expect(metrics).toMatch(/orch_task_runner_limit\{[^}]*\} 5\n/)

    const table = await runCli(['status'], { cwd: dir.path, env })
    expect(table.code, table.stderr).toBe(0)
    expect(table.stdout).toContain(`own ok  ${own.url}  0/6 in flight (concurrency from backends[].concurrency)`)
    expect(table.stdout).toContain(`shared ok  ${shared.url}  0/3 in flight (concurrency from runtime.ollama.concurrency)`)
    expect(table.stdout).toContain(`vllm ok  ${vllm.url}  0/4 in flight (concurrency from default)`)
    expect(table.stdout).toMatch(/slots +13 \(busy 0\)/)
    expect(table.stdout).toMatch(/task runner +5 tasks at once \(agent_runner_concurrency\)/)
    expect(table.stdout).not.toContain('workers')
    const json = (await runCli(['status', '--json'], { cwd: dir.path, env })).json()
    expect(json.stats.limits.backends.map((b: { concurrency: number }) => b.concurrency)).toEqual([6, 3, 4])
  }, 30_000)
})

async function until(check: () => boolean, what: () => string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(what())
    await Bun.sleep(10)
  }
}

/** The URL once `orch serve --json` printed it, and its stderr so far (collected as it comes). */
async function listening(p: ReturnType<typeof spawnCli>): Promise<{ url: string; stderr: () => string }> {
  let err = ''
  void (async () => {
    for await (const chunk of p.stderr as ReadableStream<Uint8Array>) err += new TextDecoder().decode(chunk)
  })()
  let out = ''
  const reader = (p.stdout as ReadableStream<Uint8Array>).getReader()
  for (;;) {
    const { value, done } = await reader.read()
    if (done) throw new Error(`orch serve exited before listening:\n${err}`)
    out += new TextDecoder().decode(value)
    try {
      return { url: (JSON.parse(out) as { url: string }).url, stderr: () => err }
    } catch {
      // not the whole object yet
    }
  }
}
