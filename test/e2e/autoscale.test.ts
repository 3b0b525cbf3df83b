/**
 * Autoscaling a real pool (test/helpers/model-server.ts as `command` workers, real processes) behind a real
 * orch serve: a pool at min 0 receives work, grows to 1..max under load, serves every request, and goes back
 * to its min after scale_down_idle; manual mode never acts on its own, and `set` sizes it.
 */
import { afterEach, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { defaultConfig } from '../../src/config/schema.ts'
import { validateData } from '../../src/config/validate.ts'
import { configureLogging } from '../../src/core/log.ts'
import { type RunningServer, startServe } from '../../src/server/serve.ts'
import { runCli, tempDir } from '../helpers/cli.ts'

const SERVER = join(import.meta.dir, '..', 'helpers', 'model-server.ts')
const T = 60_000
const cleanups: Array<() => Promise<unknown> | unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function serveWithPool(mode: 'auto' | 'manual', pool: Record<string, unknown> = {}): Promise<RunningServer> {
  configureLogging({ level: 'error' })
  const dir = tempDir('orch-autoscale-')
  const { config, issues } = validateData({
    backends: [],
    tasks: { synchronous: 'NORMAL' },
    graceful_shutdown_timeout_ms: 1000,
    infrastructure_system: {
      distributed_simulation: { orchestrator_mode: mode },
      resource_management: { auto_scaling_enabled: true, scale_interval_seconds: 0.2, scale_down_window_seconds: 1 },
      llm_orchestration: { caching: { enabled: false } },
      performance_monitoring: { export_path: join(dir.path, 'perf') },
    },
    pools: [
      {
        name: 'gen',
        profile: 'command',
        api: 'ollama',
        models: ['test-model'],
        command: [process.execPath, SERVER, '--port', '{port}', '--delay-ms', '300'],
        min_workers: 0,
        max_workers: 3,
        target_per_worker: 1,
        scale_down_idle: 2,
        ...pool,
      },
    ],
  })
  expect(issues).toEqual([])
  const server = await startServe({
    config: config ?? defaultConfig(),
    home: dir.path,
    version: '0.0.0-test',
    port: 0,
    healthIntervalMs: 0,
  })
  cleanups.push(() => dir.cleanup())
  cleanups.push(() => server.stop(500))
  return server
}

const get = async (s: RunningServer, path: string) => (await fetch(`${s.url}${path}`)).json() as Promise<any>
const gen = (s: RunningServer) => get(s, '/scale').then((x) => x.pools[0])

async function until(what: string, probe: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`)
    await Bun.sleep(50)
  }
}

const chat = (s: RunningServer, i: number) =>
  fetch(`${s.url}/api/chat`, {
    method: 'POST',
    body: JSON.stringify({ model: 'test-model', messages: [{ role: 'user', content: `hello ${i}` }], stream: false }),
  })

describe('autoscaling a pool', () => {
  test(
    'from min 0: work wakes the pool, it grows within max under load, every request is served, then idle takes it back to 0',
    async () => {
      const s = await serveWithPool('auto')
      // It starts at pool_size 1 (within 0..3), kept for scale_down_idle (2 s) from the start; with no load
      // by then it goes down to 0.
      await until('the first worker ready', async () => (await gen(s)).ready === 1, 15_000)
      await until('the pool idle at 0', async () => (await gen(s)).current === 0, 15_000)
      let most = 0
      const watching = setInterval(async () => {
        const figures = s.deps.pools?.poolFigures('gen')
        if (figures) most = Math.max(most, figures.current)
      }, 20)
      cleanups.push(() => clearInterval(watching))
      // Nothing serves test-model now: the requests wait for a worker instead of failing.
      const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => chat(s, i)))
      expect(answers.map((r) => r.status)).toEqual(Array.from({ length: 12 }, () => 200))
      const bodies = await Promise.all(answers.map((r) => r.json() as Promise<any>))
      expect(bodies.map((b) => b.message.content)).toEqual(Array.from({ length: 12 }, (_, i) => `echo: hello ${i}`))
      const status = await gen(s)
      const ups = status.decisions.filter((d: any) => d.applied && d.to > d.from)
      expect(ups[0]).toMatchObject({ from: 0 })
      expect(Math.max(...ups.map((d: any) => d.to))).toBe(3)
      expect(most).toBeLessThanOrEqual(3)
      expect(most).toBeGreaterThanOrEqual(2)
      // Idle again: back to min 0 after scale_down_idle, the decision saying why.
      await until('back to 0', async () => (await gen(s)).current === 0, 15_000)
      const last = (await gen(s)).decisions.at(-1)
      expect(last).toMatchObject({ to: 0, applied: true })
      expect(last.reason).toContain('no load for')
      // The metrics and the event stream say the same.
      const metrics = await (await fetch(`${s.url}/metrics`)).text()
      expect(metrics).toMatch(/orch_scale_decisions_total\{instance="[^"]+",direction="up"\} [1-9]/)
      expect(metrics).toMatch(/orch_pool_workers\{instance="[^"]+",pool="gen",kind="max"\} 3/)
    },
    T,
  )

  test(
    'manual mode never acts on its own; set sizes the pool; in auto mode set is refused with the reason',
    async () => {
      const s = await serveWithPool('manual', { pool_size: 1, min_workers: 1 })
      await until('the first worker ready', async () => (await gen(s)).ready === 1, 15_000)
      // Load a manual pool could scale for: 6 requests for one worker. Nothing changes on its own.
      const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => chat(s, i)))
      expect(answers.every((r) => r.status === 200)).toBe(true)
      await Bun.sleep(600)
      expect(await gen(s)).toMatchObject({ current: 1, decisions: [] })
      const set = await fetch(`${s.url}/scale/gen`, { method: 'POST', body: JSON.stringify({ workers: 2 }) })
      expect(set.status).toBe(200)
      await until('two workers ready', async () => (await gen(s)).ready === 2, 15_000)
      expect((await gen(s)).decisions).toMatchObject([{ from: 1, to: 2, applied: true, reason: 'orch scale set gen 2' }])
      const tooMany = await fetch(`${s.url}/scale/gen`, { method: 'POST', body: JSON.stringify({ workers: 4 }) })
      expect(tooMany.status).toBe(400)
      expect(((await tooMany.json()) as any).error.message).toContain('max_workers 3')
      const unknown = await fetch(`${s.url}/scale/nope`, { method: 'POST', body: JSON.stringify({ workers: 1 }) })
      expect(unknown.status).toBe(404)

      // The same through the CLI.
      const status = await runCli(['scale', 'status', '--url', s.url, '--json'])
      expect(status.code).toBe(0)
      expect(status.json().pools[0]).toMatchObject({ pool: 'gen', current: 2, min: 1, max: 3 })
      const text = await runCli(['scale', 'status', '--url', s.url])
      expect(text.stdout).toContain('mode: manual: no automatic decisions')
      expect(text.stdout).toMatch(/gen\s+2\s+2\s+2\s+1\s+3\s+1/)
      expect(text.stdout).toContain('1 → 2  orch scale set gen 2')
      const down = await runCli(['scale', 'set', 'gen', '1', '--url', s.url])
      expect(down.code).toBe(0)
      expect(down.stdout).toContain('pool gen: 1 worker(s), asked for 1')
      const bad = await runCli(['scale', 'set', 'gen', 'two', '--url', s.url])
      expect(bad.code).toBe(2)
      expect(bad.stderr).toContain('N: expected a whole number of workers, got "two"')

      const auto = await serveWithPool('auto', { pool_size: 1, min_workers: 1 })
      const cliRefused = await runCli(['scale', 'set', 'gen', '2', '--url', auto.url])
      expect(cliRefused.code).not.toBe(0)
      expect(cliRefused.stderr).toContain('orchestrator_mode: manual')
      const refused = await fetch(`${auto.url}/scale/gen`, { method: 'POST', body: JSON.stringify({ workers: 2 }) })
      expect(refused.status).toBe(409)
      expect(((await refused.json()) as any).error.message).toContain('orchestrator_mode: manual')
    },
    T,
  )
})
