/**
 * orch_pool_worker_restarts_total and orch_queue_oldest_wait_seconds on the /metrics of a real orch serve:
 * a real pool worker (test/helpers/model-server.ts as a `command` pool) killed with SIGKILL and restarted,
 * then asked to restart (serving, and stopped); a request held waiting for the only slot of a slow
 * backend; a durable task queued with nobody to run it.
 */
import { afterEach, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { defaultConfig } from '../../src/config/schema.ts'
import { validateData } from '../../src/config/validate.ts'
import { configureLogging } from '../../src/core/log.ts'
import { signalGroup } from '../../src/pool/proc.ts'
import type { Worker } from '../../src/pool/worker.ts'
import { type RunningServer, startServe } from '../../src/server/serve.ts'
import { tempDir } from '../helpers/cli.ts'
import { startTestServe } from '../helpers/serve.ts'

const SERVER = join(import.meta.dir, '..', 'helpers', 'model-server.ts')
const T = 60_000
const cleanups: Array<() => Promise<unknown> | unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function serve(data: Record<string, unknown>, runTasks = true): Promise<RunningServer> {
  configureLogging({ level: 'error' })
  const dir = tempDir('orch-metrics-pq-')
  const { config, issues } = validateData({
    tasks: { synchronous: 'NORMAL' },
    graceful_shutdown_timeout_ms: 1000,
    infrastructure_system: {
      llm_orchestration: { caching: { enabled: false } },
      performance_monitoring: { export_path: join(dir.path, 'perf'), export_formats: ['none'] },
    },
    ...data,
  })
  expect(issues).toEqual([])
  const server = await startServe({
    config: config ?? defaultConfig(),
    home: dir.path,
    version: '0.0.0-test',
    port: 0,
    healthIntervalMs: 0,
    runTasks,
  })
  cleanups.push(() => dir.cleanup())
  cleanups.push(() => server.stop(500))
  return server
}

/** One sample's value from the exposition, matched by the labels given (any others allowed). */
function sampleOf(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$/.exec(line)
    if (!m || m[1] !== name) continue
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map(([, k, v]) => [k, v]))
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3])
  }
  return undefined
}

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, ms: number): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const got = await probe()
    if (got !== undefined && got !== false) return got
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`)
    await Bun.sleep(50)
  }
}

describe('orch_pool_worker_restarts_total', () => {
  test(
    'a worker killed with SIGKILL comes back and counts one restart; each asked restart counts another',
    async () => {
      const s = await serve({
        backends: [],
        pools: [
          {
            name: 'gen',
            profile: 'command',
            api: 'ollama',
            models: ['test-model'],
            command: [process.execPath, SERVER, '--port', '{port}'],
            pool_size: 1,
          },
        ],
      })
      const metrics = async () => (await fetch(`${s.url}/metrics`)).text()
      const restarts = (text: string) => sampleOf(text, 'orch_pool_worker_restarts_total', { pool: 'gen', worker: 'gen-1' })
      const worker = await until('the worker healthy', async () => s.deps.pools?.workers.find((w) => w.state === 'healthy'), 20_000)
      expect(worker.id).toBe('gen-1')
      expect(restarts(await metrics())).toBe(0)
      const firstPid = worker.pid as number
      expect(signalGroup(firstPid, 'SIGKILL')).toBe(true)
      await until('healthy again in a new process', async () => worker.state === 'healthy' && worker.pid !== firstPid, 20_000)
      expect(restarts(await metrics())).toBe(1)
      // orch pool restart: the worker drains and starts again, without a failure.
      const secondPid = worker.pid as number
      await (s.deps.pools?.restartWorkers([worker as Worker]) ?? Promise.reject(new Error('no pools')))
      expect([worker.state, worker.pid !== secondPid]).toEqual(['healthy', true])
      expect(restarts(await metrics())).toBe(2)
      // orch pool stop, then orch pool restart: a worker that is not serving starts again at once.
      await s.deps.pools?.stopWorkers([worker as Worker])
      expect(worker.state).toBe('stopped')
      await s.deps.pools?.restartWorkers([worker as Worker])
      expect(worker.state).toBe('healthy')
      expect(restarts(await metrics())).toBe(3)
    },
    T,
  )
})

describe('orch_queue_oldest_wait_seconds', () => {
  test(
    'kind="slot": a request held waiting for the only slot of a slow backend shows its wait, then 0',
    async () => {
      const t = await startTestServe({ fakes: [{ latencyMs: 1500 }], concurrency: 1 })
      cleanups.push(() => t.stop())
      const slot = async () => sampleOf(await (await t.fetch('/metrics')).text(), 'orch_queue_oldest_wait_seconds', { kind: 'slot' })
      expect(await slot()).toBe(0)
      const ask = (content: string) =>
        t.fetch('/api/chat', {
          method: 'POST',
          body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content }], stream: false }),
        })
      const first = ask('first')
      await until('the first call at the backend', async () => (t.fakes[0]?.stats.inFlight ?? 0) > 0, 5000)
      const second = ask('second')
      const waited = await until('the second request waiting', async () => ((await slot()) ?? 0) > 0.2 && (await slot()), 5000)
      expect(waited).toBeLessThan(1.5)
      const answers = await Promise.all([first, second])
      expect(answers.map((r) => r.status)).toEqual([200, 200])
      expect(await slot()).toBe(0)
    },
    T,
  )

  test(
    'kind="task": a durable task due with nobody to run it shows how long it has been due',
    async () => {
      const s = await serve({ backends: [] }, false)
      const task = async () => sampleOf(await (await fetch(`${s.url}/metrics`)).text(), 'orch_queue_oldest_wait_seconds', { kind: 'task' })
      expect(await task()).toBe(0)
      const submitted = await fetch(`${s.url}/queue/submit`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ type: 'generate', model: 'llama3.2', payload: { prompt: 'hi' } }),
      })
      expect(submitted.status).toBe(202)
      await Bun.sleep(300)
      const due = (await task()) as number
      expect(due).toBeGreaterThanOrEqual(0.25)
      expect(due).toBeLessThan(30)
    },
    T,
  )
})
