/**
 * A pool of two `llamacpp` workers (real `orch model-worker` processes on the tiny GGUF model, real
 * node-llama-cpp inference) behind a real orch serve, used through the official `ollama` npm client: one
 * answer and a stream through orch, the same answer twice at temperature 0, two requests at once in one
 * worker, and a worker killed with SIGKILL mid-stream: the client gets an error, the worker comes back, and
 * the next request succeeds.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { readdirSync, readFileSync } from 'node:fs'
import { Ollama } from 'ollama'
import { defaultConfig } from '../../src/config/schema.ts'
import { validateData } from '../../src/config/validate.ts'
import { configureLogging } from '../../src/core/log.ts'
import { listWorkers } from '../../src/pool/records.ts'
import { type RunningServer, startServe } from '../../src/server/serve.ts'
import { tempDir } from '../helpers/cli.ts'
import { tinyModelPath } from '../helpers/tiny-model.ts'

const T = 60_000
const MODEL = 'tiny-chat'

/** The pid of the `orch model-worker` process listening on `port` (not the watchdog above it). */
function modelWorkerPid(port: number): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    let argv: string[]
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0')
    } catch {
      continue
    }
    const at = argv.indexOf('--port')
    if (argv.includes('model-worker') && at >= 0 && argv[at + 1] === String(port) && !argv.includes('--parent')) return Number(entry)
  }
  return undefined
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`)
    await Bun.sleep(50)
  }
}

describe('a llamacpp pool under orch serve', () => {
  let server: RunningServer
  let client: Ollama
  const dir = tempDir('orch-llamacpp-pool-')

  beforeAll(async () => {
    configureLogging({ level: 'error' })
    const { config, issues } = validateData({
      backends: [],
      tasks: { synchronous: 'NORMAL' },
      graceful_shutdown_timeout_ms: 1000,
      infrastructure_system: {
        llm_orchestration: { caching: { enabled: false } },
        performance_monitoring: { export_path: `${dir.path}/perf` },
      },
      pools: [
        {
          name: 'tiny',
          profile: 'llamacpp',
          model: tinyModelPath(),
          models: [MODEL],
          pool_size: 2,
          llamacpp: { threads: 1, parallel: 2 },
        },
      ],
    })
    expect(issues).toEqual([])
    server = await startServe({ config: config ?? defaultConfig(), home: dir.path, version: '0.0.0-test', port: 0, healthIntervalMs: 0 })
    client = new Ollama({ host: server.url })
    await until('both workers healthy', () => {
      const rows = listWorkers(server.store)
      return rows.length === 2 && rows.every((r) => r.state === 'healthy') ? rows : undefined
    })
  }, T)

  afterAll(async () => {
    await server?.stop(500)
    dir.cleanup()
  })

  test('orch lists the model, and each worker takes llamacpp.parallel requests', async () => {
    const tags = await client.list()
    expect(tags.models.map((m) => m.name)).toContain(MODEL)
    const stats = (await (await fetch(`${server.url}/stats`)).json()) as any
    const pool = stats.limits.backends.filter((b: any) => b.name.startsWith('tiny/'))
    expect(pool).toHaveLength(2)
    for (const b of pool) expect(b).toMatchObject({ concurrency: 2, source: 'pools[].llamacpp.parallel' })
  })

  test(
    'the ollama client chats and streams through orch; temperature 0 gives the same answer twice',
    async () => {
      const ask = () =>
        client.chat({ model: MODEL, messages: [{ role: 'user', content: 'hello' }], options: { temperature: 0, num_predict: 32 } })
      const a = await ask()
      const b = await ask()
      expect(a.done).toBe(true)
      expect(a.eval_count).toBe(32)
      expect(a.prompt_eval_count).toBeGreaterThan(1)
      expect(a.message.content.length).toBeGreaterThan(0)
      expect(b.message.content).toBe(a.message.content)
      const parts: string[] = []
      let last: any
      for await (const part of await client.chat({
        model: MODEL,
        messages: [{ role: 'user', content: 'hello' }],
        stream: true,
        options: { temperature: 0, num_predict: 32 },
      })) {
        parts.push(part.message.content)
        last = part
      }
      expect(parts.length).toBeGreaterThan(3)
      expect(last.done).toBe(true)
      expect(last.eval_count).toBe(32)
      expect(parts.join('')).toBe(a.message.content)
    },
    T,
  )

  test(
    'four requests at once: two workers, two sequences each, all four generating together',
    async () => {
      const one = (i: number) =>
        client.generate({ model: MODEL, prompt: `four ${i}`, raw: true, options: { temperature: 0, num_predict: 1200 } })
      const results = await Promise.all([0, 1, 2, 3].map(one))
      expect(results.map((r) => r.eval_count)).toEqual([1200, 1200, 1200, 1200])
      const peaks = await Promise.all(
        listWorkers(server.store).map(
          async (r) => ((await (await fetch(`http://127.0.0.1:${r.port}/health`)).json()) as any).peak_parallel,
        ),
      )
      expect(Math.max(...peaks)).toBe(2)
    },
    T,
  )

  test(
    'SIGKILL of a worker mid-stream: the client gets an error, the worker comes back, the next request succeeds',
    async () => {
      const stream = await client.chat({
        model: MODEL,
        messages: [{ role: 'user', content: 'a long answer please' }],
        stream: true,
        options: { temperature: 0, num_predict: 1900 },
      })
      const iterator = stream[Symbol.asyncIterator]()
      const first = await iterator.next()
      expect(first.done).toBe(false)
      // The worker generating for this stream is the one with a request in flight.
      const busy = await until('a busy worker', async () => {
        for (const row of listWorkers(server.store)) {
          const h = (await (await fetch(`http://127.0.0.1:${row.port}/health`)).json()) as any
          if (h.busy > 0) return row
        }
        return undefined
      })
      const pid = modelWorkerPid(busy.port as number)
      expect(pid).toBeNumber()
      process.kill(pid as number, 'SIGKILL')
      let failure: unknown
      let parts = 1
      try {
        for (let next = await iterator.next(); !next.done; next = await iterator.next()) parts++
      } catch (err) {
        failure = err
      }
      expect(failure).toBeInstanceOf(Error)
      expect(String((failure as Error).message)).not.toBe('')
      expect(parts).toBeLessThan(1900)
      const back = await until('the killed worker healthy again, in a new process', () => {
        const row = listWorkers(server.store).find((r) => r.worker_id === busy.worker_id)
        return row?.state === 'healthy' && row.pid !== busy.pid ? row : undefined
      })
      expect(back.restarts).toBeGreaterThan(busy.restarts)
      const after = await client.chat({ model: MODEL, messages: [{ role: 'user', content: 'after' }], options: { num_predict: 5 } })
      expect(after.eval_count).toBe(5)
    },
    T,
  )
})
