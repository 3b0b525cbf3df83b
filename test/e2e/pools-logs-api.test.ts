/**
 * GET /pools, POST /pools/{pool}/restart|stop, GET /logs and GET /logs/sources against a real orch serve
 * whose pool runs real workers (test/helpers/model-server.ts as `command` workers): the list is the
 * supervisor's and `orch pool status --json`'s, field for field; restart and stop act on the workers named;
 * unknown pools and workers are 404s, a serve without pools answers 409; a log source is a known name and
 * never a path; tails are capped and read from the end; follow streams appended lines; every route sits
 * behind the token and the cross-site gates.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { serveLogPath } from '../../src/core/home.ts'
import { MAX_LINES, readTailBounded, TAIL_BYTES } from '../../src/server/routes/logs.ts'
import { runCli } from '../helpers/cli.ts'
import { twoWorkerPool } from '../helpers/command-pool.ts'
import { startTestServe, type TestServe } from '../helpers/serve.ts'
import { sseFrames } from '../helpers/sse.ts'

const TOKEN = 'pools-logs-api-token-0123456789'
const T = 60_000

const poolConfig = twoWorkerPool

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const got = await probe()
    if (got !== undefined) return got
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`)
    await Bun.sleep(50)
  }
}

const post = (t: TestServe, path: string, body?: unknown) =>
  t.fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })

describe('a serve with a pool of real workers', () => {
  let t: TestServe
  const pools = async () => (await (await t.fetch('/pools')).json()) as any
  const worker = async (id: string) => (await pools()).workers.find((w: any) => w.id === id)

  beforeAll(async () => {
    const pooled = poolConfig()
    t = await startTestServe({
      tweak: (c) => {
        c.backends = []
        c.pools = pooled.pools
        c.heartbeat = pooled.heartbeat
      },
    })
    await until('both workers healthy', async () => {
      const p = await pools()
      return p.workers.length === 2 && p.workers.every((w: any) => w.state === 'healthy') ? p : undefined
    })
  }, T)
  afterAll(async () => {
    await t?.stop()
  })

  test(
    'GET /pools lists every worker field for field as the supervisor and `orch pool status --json` see it',
    async () => {
      // Traffic, so that requests served are not all zero.
      for (let i = 0; i < 4; i++) {
        const r = await t.fetch('/api/chat', {
          method: 'POST',
          body: JSON.stringify({ model: 'test-model', messages: [{ role: 'user', content: `hi ${i}` }], stream: false }),
        })
        expect(r.status).toBe(200)
      }
      const supervisor = t.server.deps.pools
      if (!supervisor) throw new Error('no supervisor')
      // served reaches the rows at a heartbeat: compare once the API, the supervisor and the CLI agree.
      const agreed = await until('GET /pools and orch pool status --json agree', async () => {
        const api = await pools()
        const cli = await runCli(['pool', 'status', '--json', '--home', t.home])
        expect(cli.code).toBe(0)
        const rows = cli.json().workers as any[]
        const strip = (w: any) => ({ ...w, uptime_s: undefined })
        const same =
          JSON.stringify(api.workers.map(strip)) === JSON.stringify(rows.map(strip)) &&
          api.workers.every((w: any, i: number) => Math.abs(w.uptime_s - rows[i].uptime_s) <= 2)
        return same && api.stats.requests === 4 ? { api, rows } : undefined
      })
      const { api } = agreed
      expect(Object.keys(api.workers[0]).sort()).toEqual(
        ['gpu', 'id', 'inflight', 'last_heartbeat', 'pid', 'pool', 'port', 'restarts', 'served', 'state', 'uptime_s'].sort(),
      )
      for (const w of supervisor.workers) {
        const row = api.workers.find((x: any) => x.id === w.id)
        expect(row).toMatchObject({ pool: 'gen', state: w.state, pid: w.pid, port: w.port, gpu: null, restarts: w.restarts })
        expect(row.uptime_s).toBeGreaterThanOrEqual(0)
        expect(typeof row.last_heartbeat).toBe('string')
      }
      expect(api.workers.reduce((n: number, w: any) => n + w.served, 0)).toBe(4)
      expect(api.pools).toEqual([
        {
          pool: 'gen',
          profile: 'command',
          api: 'ollama',
          models: ['test-model'],
          current: 2,
          ready: 2,
          inflight: 0,
          workers: ['gen-1', 'gen-2'],
        },
      ])
      expect(api.stats).toMatchObject({ requests: 4, workers: 2, available: 2, busy: 0, queued: 0 })
      // Pool workers join the backends as they turn healthy, in that order.
      expect(api.backends.map((b: any) => [b.name, b.pool]).sort()).toEqual([
        ['gen/gen-1', 'gen'],
        ['gen/gen-2', 'gen'],
      ])
    },
    T,
  )

  test(
    'restart and stop act on the workers named, answer 202 at once, and publish worker events',
    async () => {
      const closing = new AbortController()
      const events = await t.fetch('/events?types=worker', { signal: closing.signal })
      const frames = sseFrames(events.body as ReadableStream<Uint8Array>)
      const before = await worker('gen-1')
      const other = await worker('gen-2')
      const restarted = await post(t, '/pools/gen/restart', { workers: ['gen-1'] })
      expect(restarted.status).toBe(202)
      const body = (await restarted.json()) as any
      expect(body).toMatchObject({ pool: 'gen', action: 'restart' })
      expect(body.workers.map((w: any) => w.id)).toEqual(['gen-1'])
      const after = await until('gen-1 healthy with a new pid', async () => {
        const w = await worker('gen-1')
        return w.state === 'healthy' && w.pid !== before.pid ? w : undefined
      })
      expect(after.port).toBeNumber()
      // The sibling was not touched.
      expect(await worker('gen-2')).toMatchObject({ pid: other.pid, state: 'healthy' })
      const seen: string[] = []
      while (!seen.includes('healthy')) {
        const frame = await frames.next()
        expect(frame.event).toBe('worker')
        expect(frame.data.pool).toBe('gen')
        if (frame.data.id === 'gen-1') seen.push(frame.data.state)
      }
      expect(seen).toEqual(['draining', 'starting', 'healthy'])
      expect(frames.frames.at(-1)?.data).toMatchObject({ id: 'gen-1', state: 'healthy', pid: after.pid, port: after.port })

      const stopped = await post(t, '/pools/gen/stop', { workers: ['gen-2'] })
      expect(stopped.status).toBe(202)
      await until('gen-2 stopped', async () => ((await worker('gen-2')).state === 'stopped' ? true : undefined))
      expect(await worker('gen-2')).toMatchObject({ pid: null, uptime_s: null })
      expect((await worker('gen-1')).state).toBe('healthy')
      // Restart starts a stopped worker; no body at all is the whole pool.
      expect((await post(t, '/pools/gen/restart')).status).toBe(202)
      await until('both healthy again', async () => {
        const p = await pools()
        return p.workers.every((w: any) => w.state === 'healthy') ? true : undefined
      })
      closing.abort()
    },
    T,
  )

  test('unknown pools and workers are 404s in orch’s error dialect; a malformed body is a 400 naming workers', async () => {
    const pool = await post(t, '/pools/nope/restart', {})
    expect(pool.status).toBe(404)
    expect(((await pool.json()) as any).error).toMatchObject({ code: 'E_POOL_NOT_FOUND', message: 'unknown pool "nope" (pools: gen)' })
    const worker = await post(t, '/pools/gen/stop', { workers: ['gen-1', 'gen-9'] })
    expect(worker.status).toBe(404)
    const error = ((await worker.json()) as any).error
    expect(error).toMatchObject({ code: 'E_WORKER_NOT_FOUND', field: 'workers' })
    expect(error.message).toContain('"gen-9"')
    // Nothing was stopped: an unknown name refuses the whole request.
    expect(((await pools()).workers as any[]).every((w) => w.state === 'healthy')).toBe(true)
    for (const body of [{ workers: 'gen-1' }, { workers: [] }, { workers: [1] }, { worker: 'gen-1' }, null]) {
      const bad = await post(t, '/pools/gen/restart', body)
      expect(bad.status).toBe(400)
      expect(((await bad.json()) as any).error).toMatchObject({ code: 'E_VALIDATION' })
    }
    // A misspelt key is refused, not read as "the whole pool".
    const typo = ((await (await post(t, '/pools/gen/stop', { worker: 'gen-1' })).json()) as any).error
    expect(typo).toMatchObject({ field: 'worker' })
    expect(typo.message).toContain('expected {"workers": [worker ids]}')
    const notJson = await t.fetch('/pools/gen/restart', { method: 'POST', body: '{' })
    expect(notJson.status).toBe(400)
    expect(((await notJson.json()) as any).error.code).toBe('E_BAD_JSON')
    const method = await t.fetch('/pools/gen/restart')
    expect(method.status).toBe(405)
  })

  test('GET /logs/sources lists serve and each worker; GET /logs answers a worker’s last lines', async () => {
    const sources = ((await (await t.fetch('/logs/sources')).json()) as any).sources
    expect(sources).toEqual([
      { source: 'serve', kind: 'serve', pool: null, exists: false },
      { source: 'gen-1', kind: 'worker', pool: 'gen', exists: true },
      { source: 'gen-2', kind: 'worker', pool: 'gen', exists: true },
    ])
    const log = (await (await t.fetch('/logs?source=gen-2&lines=1')).json()) as any
    expect(log).toMatchObject({ source: 'gen-2', kind: 'worker', pool: 'gen', exists: true, truncated: false })
    expect(log.lines).toHaveLength(1)
    expect(log.lines[0]).toMatch(/^model-server pid \d+ listening on 127\.0\.0\.1:\d+$/)
    // serve.log belongs to a background serve; without one the answer is empty, not an error.
    expect(await (await t.fetch('/logs?source=serve')).json()).toMatchObject({ exists: false, lines: [] })
  })
})

describe('logs of a serve without pools', () => {
  let t: TestServe
  let file = ''
  beforeAll(async () => {
    t = await startTestServe()
    file = serveLogPath(t.home)
    mkdirSync(join(t.home, 'logs'), { recursive: true })
    writeFileSync(file, `${Array.from({ length: 2500 }, (_, i) => `line ${i + 1}`).join('\n')}\n`)
  })
  afterAll(async () => {
    await t?.stop()
  })

  test('a source must be one of the known names, never a path: anything else is a 400 naming source', async () => {
    for (const source of ['../state.db', '/etc/passwd', 'logs/serve.log', 'gen/gen-1', 'gen-1', '', 'serve\0']) {
      const r = await t.fetch(`/logs?${new URLSearchParams({ source })}`)
      expect(r.status).toBe(400)
      const error = ((await r.json()) as any).error
      expect(error).toMatchObject({ code: 'E_LOG_SOURCE', field: 'source' })
      expect(error.message).toContain('known: serve')
    }
    const none = await t.fetch('/logs')
    expect(none.status).toBe(400)
    for (const lines of ['-1', 'ten', '1.5', '1e3']) {
      const r = await t.fetch(`/logs?source=serve&lines=${lines}`)
      expect(r.status).toBe(400)
      expect(((await r.json()) as any).error).toMatchObject({ code: 'E_VALIDATION', field: 'lines' })
    }
    expect((await t.fetch('/logs?source=serve&follow=maybe')).status).toBe(400)
  })

  test(`lines are capped at ${MAX_LINES}, the last ones of the file`, async () => {
    const all = (await (await t.fetch('/logs?source=serve&lines=5000')).json()) as any
    expect(all.lines).toHaveLength(MAX_LINES)
    expect(all.lines[0]).toBe(`line ${2500 - MAX_LINES + 1}`)
    expect(all.lines.at(-1)).toBe('line 2500')
    const three = (await (await t.fetch('/logs?source=serve&lines=3')).json()) as any
    expect(three.lines).toEqual(['line 2498', 'line 2499', 'line 2500'])
    const deflt = (await (await t.fetch('/logs?source=serve')).json()) as any
    expect(deflt.lines).toHaveLength(100)
  })

  test('POST /pools/{pool}/restart and /stop answer 409 without pools; GET /pools is empty', async () => {
    for (const action of ['restart', 'stop']) {
      const r = await post(t, `/pools/gen/${action}`, {})
      expect(r.status).toBe(409)
      expect(((await r.json()) as any).error.code).toBe('E_NO_POOLS')
    }
    const p = (await (await t.fetch('/pools')).json()) as any
    expect(p).toMatchObject({ pools: [], workers: [] })
    expect(p.backends.map((b: any) => b.name)).toEqual(['fake0'])
  })

  test('follow=1 streams the last lines, then each line as it is appended', async () => {
    const closing = new AbortController()
    const response = await t.fetch('/logs?source=serve&lines=2&follow=1', { signal: closing.signal })
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toContain('text/event-stream')
    const frames = sseFrames(response.body as ReadableStream<Uint8Array>)
    expect(await frames.next()).toMatchObject({ event: 'lines', data: { lines: ['line 2499', 'line 2500'] } })
    appendFileSync(file, 'appended one\nappended two\npartial')
    expect((await frames.next()).data.lines).toEqual(['appended one', 'appended two'])
    // A line is sent once it is complete.
    appendFileSync(file, ' now whole\n')
    expect((await frames.next()).data.lines).toEqual(['partial now whole'])
    closing.abort()
  })

  test('a tail reads only the end of a large file, however long its lines', () => {
    const big = join(t.home, 'big.log')
    // 3 MiB in one line, then two short ones: the whole file is never read.
    writeFileSync(big, `${'x'.repeat(3 * 1024 * 1024)}\nsecond\nthird\n`)
    const tail = readTailBounded(big, 10)
    expect(tail.lines.slice(-2)).toEqual(['second', 'third'])
    expect(tail.lines.join('\n').length).toBeLessThanOrEqual(TAIL_BYTES)
    expect(tail.truncated).toBe(true)
    expect(readTailBounded(big, 2)).toMatchObject({ lines: ['second', 'third'], truncated: false })
  })
})

describe('the gates', () => {
  let t: TestServe
  beforeAll(async () => {
    t = await startTestServe({ tweak: (c) => (c.server.token = TOKEN) })
  })
  afterAll(async () => {
    await t?.stop()
  })

  test('every pools and logs route needs the token, and refuses another site', async () => {
    const routes: Array<[string, string]> = [
      ['GET', '/pools'],
      ['POST', '/pools/gen/restart'],
      ['POST', '/pools/gen/stop'],
      ['GET', '/logs/sources'],
      ['GET', '/logs?source=serve'],
      ['GET', '/logs?source=serve&follow=1'],
    ]
    for (const [method, path] of routes) {
      const bare = await fetch(`${t.url}${path}`, { method })
      expect(bare.status).toBe(401)
      expect(((await bare.json()) as any).error.code).toBe('E_UNAUTHORIZED')
      const wrong = await fetch(`${t.url}${path}`, { method, headers: { authorization: 'Bearer nope' } })
      expect(wrong.status).toBe(401)
      const site = await t.fetch(path, { method, headers: { origin: 'https://evil.example' } })
      expect(site.status).toBe(403)
      expect(((await site.json()) as any).error.code).toBe('E_ORIGIN_NOT_ALLOWED')
      const host = await t.fetch(path, { method, headers: { host: 'evil.example' } })
      expect(host.status).toBe(403)
    }
    const ok = await t.fetch('/logs/sources')
    expect(ok.status).toBe(200)
    expect(((await ok.json()) as any).sources.map((s: any) => s.source)).toEqual(['serve'])
  })
})
