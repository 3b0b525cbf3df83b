/**
 * Workflows through a real `orch serve` (real HTTP, real state.db) in front of fake Ollama servers: a DAG
 * runs in dependency order with templates, a failed step fails the run, a cron workflow fires, and
 * workflows, schedules and runs in flight survive a restart on the same ORCH_HOME.
 */
import { afterEach, describe, expect, test } from 'bun:test'
import { defaultConfig } from '../../src/config/schema.ts'
import { configureLogging } from '../../src/core/log.ts'
import { type RunningServer, startServe } from '../../src/server/serve.ts'
import { openStore } from '../../src/store/db.ts'
import { tempDir } from '../helpers/cli.ts'
import { type FakeCall, type FakeServer, startFakeOllama } from '../helpers/fake-ollama.ts'
import { startTestServe, type TestServe } from '../helpers/serve.ts'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function testServe(options: Parameters<typeof startTestServe>[0] = {}): Promise<TestServe> {
  const t = await startTestServe(options)
  cleanups.push(() => t.stop())
  return t
}

/** A server on a home this test owns, so a second one can start on the same state (restarts). */
async function serveOn(home: string, fake: FakeServer): Promise<RunningServer> {
  configureLogging({ level: 'error' })
  const config = defaultConfig()
  config.backends = [{ name: 'fake0', type: 'ollama', url: fake.url, concurrency: 4 }]
  config.infrastructure_system.llm_orchestration.caching.cache_backend = 'memory'
  config.tasks.synchronous = 'NORMAL'
  config.graceful_shutdown_timeout_ms = 500
  const server = await startServe({ config, home, version: '0.0.0-test', port: 0, healthIntervalMs: 0 })
  cleanups.push(() => server.stop(200))
  return server
}

async function call(base: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}${path}`, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  })
  return { status: res.status, body: await res.json() }
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await Bun.sleep(25)
  }
}

const finishedRun = (base: string, runId: string) =>
  until(`run ${runId} to finish`, async () => {
    const { body } = await call(base, 'GET', `/runs/${runId}`)
    return ['done', 'failed', 'cancelled'].includes(body.state) ? body : undefined
  })

/** a → (b, c) → d; chat steps, and the fake echoes the last user message. */
const diamond = (name: string) => ({
  name,
  steps: [
    { id: 'a', type: 'chat', model: 'llama3.2', prompt: 'alpha' },
    { id: 'b', type: 'chat', model: 'llama3.2', prompt: 'beta after {{steps.a.output}}', depends_on: ['a'] },
    { id: 'c', type: 'generate', model: 'llama3.2', prompt: 'gamma after {{ steps.a.output }}', depends_on: ['a'] },
    { id: 'd', type: 'chat', model: 'llama3.2', prompt: 'delta: {{steps.b.output}} | {{steps.c.output}}', depends_on: ['b', 'c'] },
  ],
})

/** The fake's model call whose prompt (last user message, or prompt) starts with `word`. */
function callOf(fake: FakeServer, word: string): FakeCall[] {
  const text = (c: FakeCall) => String(c.body?.prompt ?? c.body?.messages?.at(-1)?.content ?? '')
  return fake.calls.filter((c) => (c.path === '/api/chat' || c.path === '/api/generate') && text(c).startsWith(word))
}

describe('workflows over HTTP', () => {
  test('a diamond DAG runs in dependency order; d gets b and c through templates', async () => {
    const t = await testServe({ fakes: [{ callCostMs: 150 }] })
    const events: string[] = []
    t.server.deps.bus.subscribe((e) => e.type === 'workflow' && events.push(String(e.data.change)))
    const created = await call(t.url, 'POST', '/workflows', { ...diamond('diamond'), run: true })
    expect(created.status).toBe(201)
    expect(created.body).toMatchObject({ name: 'diamond', created: true, next_run_at: null })
    const run = await finishedRun(t.url, created.body.run_id)
    expect(run.state).toBe('done')
    const out = Object.fromEntries(run.steps.map((s: any) => [s.id, s.output]))
    expect(out).toEqual({ a: 'alpha', b: 'beta after alpha', c: 'gamma after alpha', d: 'delta: beta after alpha | gamma after alpha' })
    expect(run.steps.every((s: any) => typeof s.task_id === 'string')).toBe(true)

    const [a, b, c, d] = ['alpha', 'beta', 'gamma', 'delta'].map((w) => {
      const calls = callOf(t.fakes[0] as FakeServer, w)
      expect(calls).toHaveLength(1)
      return calls[0] as FakeCall
    }) as [FakeCall, FakeCall, FakeCall, FakeCall]
    expect(b.startedAt).toBeGreaterThanOrEqual(a.endedAt as number)
    expect(c.startedAt).toBeGreaterThanOrEqual(a.endedAt as number)
    expect(d.startedAt).toBeGreaterThanOrEqual(Math.max(b.endedAt as number, c.endedAt as number))
    // b and c are independent: they run at the same time.
    expect(Math.max(b.startedAt, c.startedAt)).toBeLessThan(Math.min(b.endedAt as number, c.endedAt as number))

    const task = t.server.deps.tasks.get(run.steps[3].task_id)
    expect(task).toMatchObject({ state: 'done', idempotency_key: `wf:${run.id}:d`, type: 'chat' })
    expect(events).toContain('run_started')
    expect(events.filter((e) => e === 'step_submitted')).toHaveLength(4)
    expect(events.filter((e) => e === 'step_done')).toHaveLength(4)
    expect(events.at(-1)).toBe('run_finished')

    const detail = await call(t.url, 'GET', '/workflows/diamond')
    expect(detail.body.definition.steps).toHaveLength(4)
    expect(detail.body.last_run).toMatchObject({ id: run.id, state: 'done', trigger: 'manual' })
  }, 30_000)

  test('a failing step (400, not retryable) fails the run and skips its dependents', async () => {
    const t = await testServe()
    const fake = t.fakes[0] as FakeServer
    const created = await call(t.url, 'POST', '/workflows', diamond('fails'))
    expect(created.status).toBe(201)
    fake.failNext(1, 400, 'invalid option')
    const trigger = await call(t.url, 'POST', `/workflows/${created.body.id}/runs`)
    expect(trigger.status).toBe(202)
    const run = await finishedRun(t.url, trigger.body.run_id)
    expect(run.state).toBe('failed')
    expect(run.error).toContain('step "a" failed')
    expect(Object.fromEntries(run.steps.map((s: any) => [s.id, s.state]))).toEqual({
      a: 'failed',
      b: 'skipped',
      c: 'skipped',
      d: 'skipped',
    })
    expect(callOf(fake, 'beta')).toHaveLength(0)
    const runs = await call(t.url, 'GET', '/workflows/fails/runs')
    expect(runs.body.runs.map((r: any) => r.state)).toEqual(['failed'])
  }, 30_000)

  test('a run can be cancelled; deleting a workflow cancels its runs in flight', async () => {
    const t = await testServe({ fakes: [{ callCostMs: 5000 }] })
    const created = await call(t.url, 'POST', '/workflows', { ...diamond('slow'), run: true })
    const cancelled = await call(t.url, 'DELETE', `/runs/${created.body.run_id}`)
    expect(cancelled.body).toMatchObject({ state: 'cancelled', cancelled: true, error: 'cancelled by request' })
    expect(cancelled.body.steps.map((s: any) => s.state)).toEqual(['cancelled', 'cancelled', 'cancelled', 'cancelled'])
    expect((await t.server.deps.tasks.get(cancelled.body.steps[0].task_id))?.state).toBe('cancelled')
    expect((await call(t.url, 'DELETE', `/runs/${created.body.run_id}`)).body.cancelled).toBe(false)

    const second = await call(t.url, 'POST', '/workflows/slow/runs')
    const deleted = await call(t.url, 'DELETE', '/workflows/slow')
    expect(deleted.body).toMatchObject({ deleted: true, cancelled_runs: 1 })
    expect((await call(t.url, 'GET', `/runs/${second.body.run_id}`)).status).toBe(404)
  }, 30_000)

  test('validation answers 400 naming the field; a taken name 409', async () => {
    const t = await testServe()
    const cycle = { name: 'cyc', steps: [{ ...diamond('x').steps[0], depends_on: ['d'] }, ...diamond('x').steps.slice(1)] }
    const bad = await call(t.url, 'POST', '/workflows', cycle)
    expect(bad.status).toBe(400)
    expect(bad.body.error).toMatchObject({ field: 'steps.0.depends_on' })
    expect(bad.body.error.message).toContain('dependency cycle: a → b → d → a')
    const cron = await call(t.url, 'POST', '/workflows', { ...diamond('c'), schedule: '0 25 * * *' })
    expect(cron.status).toBe(400)
    expect(cron.body.error.field).toBe('schedule')
    const typo = await call(t.url, 'POST', '/workflows', {
      ...diamond('c'),
      steps: [{ id: 'a', type: 'chat', model: 'm', prompt: 'x', dependsOn: [] }],
    })
    expect(typo.body.error.field).toBe('steps.0.dependsOn')
    expect((await call(t.url, 'POST', '/workflows', diamond('dup'))).status).toBe(201)
    expect((await call(t.url, 'POST', '/workflows', diamond('dup'))).status).toBe(409)
    expect((await call(t.url, 'POST', '/workflows', { ...diamond('dup'), replace: true, enabled: false })).status).toBe(200)
    expect((await call(t.url, 'GET', '/workflows/nope')).status).toBe(404)
    expect((await call(t.url, 'GET', '/runs/run_nope')).status).toBe(404)
    const deleted = await call(t.url, 'DELETE', '/workflows/dup')
    expect(deleted.body).toMatchObject({ deleted: true })
    expect((await call(t.url, 'GET', '/workflows')).body.workflows).toEqual([])
  }, 30_000)

  test('a cron workflow fires (every second), within 3 s', async () => {
    const t = await testServe()
    const created = await call(t.url, 'POST', '/workflows', {
      name: 'tick',
      schedule: '* * * * * *',
      timezone: 'UTC',
      steps: [{ id: 'ping', type: 'generate', model: 'llama3.2', prompt: 'ping' }],
    })
    expect(created.status).toBe(201)
    expect(created.body.next_run_at % 1000).toBe(0)
    const run = await until(
      'a scheduled run',
      async () => (await call(t.url, 'GET', '/workflows/tick/runs')).body.runs.find((r: any) => r.state === 'done'),
      3000,
    )
    expect(run).toMatchObject({ trigger: 'schedule' })
    expect(run.scheduled_for % 1000).toBe(0)

    // Disabled: the schedule stops (manual runs still work); enabled: it goes on from now.
    const off = await call(t.url, 'POST', '/workflows/tick/disable')
    expect(off.body).toMatchObject({ enabled: false, next_run_at: null })
    await Bun.sleep(100)
    const before = (await call(t.url, 'GET', '/workflows/tick/runs')).body.runs.length
    await Bun.sleep(1300)
    expect((await call(t.url, 'GET', '/workflows/tick/runs')).body.runs.length).toBe(before)
    expect((await call(t.url, 'GET', '/workflows/tick')).body.definition.enabled).toBe(false)
    const on = await call(t.url, 'POST', '/workflows/tick/enable')
    expect(on.body.enabled).toBe(true)
    expect(on.body.next_run_at).toBeGreaterThan(Date.now() - 1000)
  }, 30_000)
})

describe('what a workflow carries into its tasks', () => {
  test('tenant follows POST /queue/submit: the attack tenant (303 characters, NUL, newline) is a 400 naming it, no task made', async () => {
    const t = await testServe()
    const attack = `${'x'.repeat(150)}\u0000\n${'y'.repeat(151)}`
    expect(attack).toHaveLength(303)
    const workflow = await call(t.url, 'POST', '/workflows', { ...diamond('tenanted'), tenant: attack, run: true })
    expect(workflow.status).toBe(400)
    expect(workflow.body.error).toMatchObject({ code: 'E_VALIDATION', field: 'tenant' })
    const task = await call(t.url, 'POST', '/queue/submit', { type: 'generate', model: 'm', payload: { prompt: 'p' }, tenant: attack })
    expect(task.status).toBe(400)
    expect(task.body.error.field).toBe('tenant')
    // One rule, so one message.
    expect(workflow.body.error.message.split(', got')[0]).toBe(task.body.error.message.split(', got')[0])
    for (const tenant of ['', 'a b', 'x'.repeat(129), 'semi;colon']) {
      const refused = await call(t.url, 'POST', '/workflows', { ...diamond('tenanted'), tenant })
      expect([tenant, refused.status, refused.body.error?.field]).toEqual([tenant, 400, 'tenant'])
    }
    expect((await call(t.url, 'GET', '/workflows')).body.workflows).toEqual([])
    expect((await t.server.deps.tasks.list()).tasks).toEqual([])

    // The widest tenant the rule allows reaches every step's task as written.
    const tenant = `team.a:b@c-d_${'e'.repeat(115)}`
    expect(tenant).toHaveLength(128)
    const ok = await call(t.url, 'POST', '/workflows', { ...diamond('tenanted'), tenant, run: true })
    expect(ok.status).toBe(201)
    const run = await finishedRun(t.url, ok.body.run_id)
    expect(await Promise.all(run.steps.map(async (s: any) => (await t.server.deps.tasks.get(s.task_id))?.tenant))).toEqual([
      tenant,
      tenant,
      tenant,
      tenant,
    ])
  }, 30_000)

  test('model names: 1 to 256 characters (the task rule) and no control characters; depends_on holds step ids', async () => {
    const t = await testServe()
    const withModel = (model: string) => ({ name: 'm', steps: [{ id: 'a', type: 'generate', model, prompt: 'p' }] })
    for (const model of ['', 'x'.repeat(257), 'llama\n3', 'llama\u00003', 'llama\u007f', 'llama\u009b3']) {
      const refused = await call(t.url, 'POST', '/workflows', withModel(model))
      expect([JSON.stringify(model), refused.status, refused.body.error?.field]).toEqual([JSON.stringify(model), 400, 'steps.0.model'])
    }
    const dep = await call(t.url, 'POST', '/workflows', {
      name: 'd',
      steps: [
        { id: 'a', type: 'generate', model: 'm', prompt: 'p' },
        { id: 'b', type: 'generate', model: 'm', prompt: 'p', depends_on: [`a\n${'z'.repeat(10_000)}`] },
      ],
    })
    expect(dep.status).toBe(400)
    expect(dep.body.error.field).toBe('steps.1.depends_on.0')
    expect(dep.body.error.message.length).toBeLessThan(300)
    expect((await t.server.deps.tasks.list()).tasks).toEqual([])
    expect((await call(t.url, 'POST', '/workflows', withModel(`hf.co/org/${'q'.repeat(246)}`))).status).toBe(201)
  }, 30_000)
})

describe('workflow lists: pages, and items equal to their GET by id', () => {
  const generate = (name: string, extra: Record<string, unknown> = {}) => ({
    name,
    steps: [{ id: 'only', type: 'generate', model: 'llama3.2', prompt: `hello ${name}` }],
    ...extra,
  })

  test('GET /workflows: limit (default 50, 1 to 1000), keyset next_cursor, 400 naming limit or cursor', async () => {
    const t = await testServe()
    const names = Array.from({ length: 53 }, (_, i) => `wf-${String(i).padStart(2, '0')}`)
    for (const name of names) expect((await call(t.url, 'POST', '/workflows', generate(name))).status).toBe(201)

    const first = await call(t.url, 'GET', '/workflows')
    expect(first.status).toBe(200)
    expect(first.body.workflows.map((w: any) => w.name)).toEqual(names.slice(0, 50))
    expect(first.body.next_cursor).toEqual(expect.any(String))

    const seen: string[] = []
    let cursor: string | null = null
    let pages = 0
    do {
      const page: { body: any } = await call(t.url, 'GET', `/workflows?limit=20${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`)
      expect(page.body.workflows.length).toBeLessThanOrEqual(20)
      seen.push(...page.body.workflows.map((w: any) => w.name))
      cursor = page.body.next_cursor
      pages++
    } while (cursor !== null && pages < 10)
    expect(seen).toEqual(names)
    expect(pages).toBe(3)
    expect((await call(t.url, 'GET', '/workflows?limit=1000')).body).toMatchObject({ next_cursor: null })
    expect((await call(t.url, 'GET', '/workflows?limit=1')).body.workflows.map((w: any) => w.name)).toEqual(['wf-00'])

    for (const limit of ['0', '1001', 'x', '1.5', '', '-1']) {
      const bad = await call(t.url, 'GET', `/workflows?limit=${limit}`)
      expect([limit, bad.status, bad.body.error?.field]).toEqual([limit, 400, 'limit'])
      expect(bad.body.error.message).toContain('limit: expected an integer from 1 to 1000')
    }
    const bad = await call(t.url, 'GET', `/workflows?cursor=${encodeURIComponent('not a cursor!')}`)
    expect([bad.status, bad.body.error?.field]).toEqual([400, 'cursor'])
  }, 60_000)

  test('GET /workflows/{id}/runs: limit, keyset next_cursor, 400 naming limit or cursor', async () => {
    const t = await testServe()
    const created = await call(t.url, 'POST', '/workflows', generate('many'))
    const ids: string[] = []
    for (let i = 0; i < 5; i++) ids.push((await call(t.url, 'POST', '/workflows/many/runs')).body.run_id)
    for (const id of ids) await finishedRun(t.url, id)
    // Newest first; two runs made within one millisecond are ordered by id, so the full list is the reference.
    const all = (await call(t.url, 'GET', '/workflows/many/runs?limit=1000')).body.runs.map((r: any) => r.id)
    expect([...all].sort()).toEqual([...ids].sort())

    const seen: string[] = []
    let cursor: string | null = null
    let pages = 0
    do {
      const page: { body: any } = await call(t.url, 'GET', `/workflows/${created.body.id}/runs?limit=2${cursor ? `&cursor=${cursor}` : ''}`)
      expect(page.body.runs.length).toBeLessThanOrEqual(2)
      seen.push(...page.body.runs.map((r: any) => r.id))
      cursor = page.body.next_cursor
      pages++
    } while (cursor !== null && pages < 10)
    expect(seen).toEqual(all)
    expect(pages).toBe(3)
    expect((await call(t.url, 'GET', '/workflows/many/runs')).body).toMatchObject({ next_cursor: null })

    for (const limit of ['0', '1001', 'x', '']) {
      const bad = await call(t.url, 'GET', `/workflows/many/runs?limit=${limit}`)
      expect([limit, bad.status, bad.body.error?.field]).toEqual([limit, 400, 'limit'])
    }
    for (const cursor of ['zzz', 'abc.def', `1.run_${'x'.repeat(50)}`]) {
      const bad = await call(t.url, 'GET', `/workflows/many/runs?cursor=${cursor}`)
      expect([cursor, bad.status, bad.body.error?.field]).toEqual([cursor, 400, 'cursor'])
    }
  }, 30_000)

  test('every listed workflow equals its GET /workflows/{id}; every listed run its GET /runs/{id}', async () => {
    const t = await testServe()
    await call(t.url, 'POST', '/workflows', { ...generate('plain'), description: 'no schedule, never run' })
    await call(t.url, 'POST', '/workflows', { ...diamond('dag'), tenant: 'team-a', priority: 3 })
    await call(t.url, 'POST', '/workflows', { ...generate('nightly'), schedule: '0 2 * * *', timezone: 'Europe/Berlin' })
    await call(t.url, 'POST', '/workflows', { ...generate('paused'), schedule: '0 3 * * *', timezone: 'UTC', enabled: false })
    const failing = await call(t.url, 'POST', '/workflows', generate('fails'))
    for (const name of ['dag', 'dag', 'nightly'])
      await finishedRun(t.url, (await call(t.url, 'POST', `/workflows/${name}/runs`)).body.run_id)
    ;(t.fakes[0] as FakeServer).failNext(1, 400, 'bad')
    await finishedRun(t.url, (await call(t.url, 'POST', `/workflows/${failing.body.id}/runs`)).body.run_id)

    const { workflows } = (await call(t.url, 'GET', '/workflows')).body
    expect(workflows.map((w: any) => w.name)).toEqual(['dag', 'fails', 'nightly', 'paused', 'plain'])
    for (const listed of workflows) {
      expect(listed).toEqual((await call(t.url, 'GET', `/workflows/${listed.id}`)).body)
      expect(listed).toEqual((await call(t.url, 'GET', `/workflows/${listed.name}`)).body)
      const { runs } = (await call(t.url, 'GET', `/workflows/${listed.id}/runs`)).body
      for (const run of runs) expect(run).toEqual((await call(t.url, 'GET', `/runs/${run.id}`)).body)
      // last_run is the newest run without its steps, exactly.
      if (runs.length === 0) expect(listed.last_run).toBeNull()
      else {
        const { steps, ...summary } = runs[0]
        expect(steps.length).toBeGreaterThan(0)
        expect(listed.last_run).toEqual(summary)
      }
    }
    // The fields the items carry, so an item that dropped one would not pass as equal to a get that did too.
    const dag = workflows[0]
    expect(dag).toMatchObject({ name: 'dag', steps: 4, definition: { tenant: 'team-a', priority: 3 }, last_run: { state: 'done' } })
    expect((await call(t.url, 'GET', '/workflows/dag/runs')).body.runs).toHaveLength(2)
    expect(workflows[1].last_run.state).toBe('failed')
    // enable and disable answer the same object too.
    const disabled = await call(t.url, 'POST', '/workflows/nightly/disable')
    expect(disabled.body).toEqual((await call(t.url, 'GET', '/workflows/nightly')).body)
  }, 30_000)
})

describe('workflows across restarts', () => {
  test('workflows and schedules persist; a schedule fires again after a restart; a missed one catches up once', async () => {
    const dir = tempDir('orch-wf-home-')
    cleanups.push(dir.cleanup)
    const fake = await startFakeOllama()
    cleanups.push(() => fake.stop())
    const steps = [{ id: 'ping', type: 'generate', model: 'llama3.2', prompt: 'ping' }]
    const first = await serveOn(dir.path, fake)
    await call(first.url, 'POST', '/workflows', { name: 'tick', schedule: '* * * * * *', timezone: 'UTC', steps })
    const hourly = await call(first.url, 'POST', '/workflows', { name: 'hourly', schedule: '0 * * * *', timezone: 'UTC', steps })
    await until('a first scheduled run', async () => (await call(first.url, 'GET', '/workflows/tick/runs')).body.runs[0])
    await first.stop(200)

    // While down, the hourly schedule's next run passes (three hours late).
    const store = openStore(dir.path)
    const late = Date.now() - 3 * 3_600_000
    store.run('UPDATE workflows SET next_run_at = ? WHERE id = ?', [late, hourly.body.id])
    store.close()

    const restartedAt = Date.now()
    const second = await serveOn(dir.path, fake)
    const list = (await call(second.url, 'GET', '/workflows')).body.workflows
    expect(list.map((w: any) => [w.name, w.schedule, w.enabled])).toEqual([
      ['hourly', '0 * * * *', true],
      ['tick', '* * * * * *', true],
    ])
    const again = await until('a scheduled run after the restart', async () => {
      const { runs } = (await call(second.url, 'GET', '/workflows/tick/runs')).body
      return runs.find((r: any) => r.scheduled_for >= restartedAt - 1000 && r.state === 'done')
    })
    expect(again.trigger).toBe('schedule')
    const hourlyRuns = (await call(second.url, 'GET', '/workflows/hourly/runs')).body.runs
    expect(hourlyRuns).toHaveLength(1)
    expect(hourlyRuns[0].scheduled_for).toBe(Math.floor(Date.now() / 3_600_000) * 3_600_000)
    expect((await call(second.url, 'GET', '/workflows/hourly')).body.next_run_at).toBe((Math.floor(Date.now() / 3_600_000) + 1) * 3_600_000)
    const tickRuns = (await call(second.url, 'GET', '/workflows/tick/runs?limit=1000')).body.runs
    const occurrences = tickRuns.map((r: any) => r.scheduled_for)
    expect(new Set(occurrences).size).toBe(occurrences.length)
  }, 30_000)

  test('a restart in the middle of a run continues it', async () => {
    const dir = tempDir('orch-wf-home-')
    cleanups.push(dir.cleanup)
    const fake = await startFakeOllama({ callCostMs: 400 })
    cleanups.push(() => fake.stop())
    const first = await serveOn(dir.path, fake)
    const created = await call(first.url, 'POST', '/workflows', { ...diamond('mid'), run: true })
    const runId = created.body.run_id
    // a is done and b, c are at the backend when orch stops.
    await until('b and c in flight', () => (callOf(fake, 'beta').length > 0 && callOf(fake, 'gamma').length > 0 ? true : undefined))
    await first.stop(50)
    expect((await call(first.url, 'GET', `/runs/${runId}`).catch(() => ({ status: 0 }))).status).toBe(0)

    const second = await serveOn(dir.path, fake)
    const run = await finishedRun(second.url, runId)
    expect(run.state).toBe('done')
    expect(run.steps.find((s: any) => s.id === 'd').output).toBe('delta: beta after alpha | gamma after alpha')
    expect(callOf(fake, 'alpha')).toHaveLength(1)
    expect(callOf(fake, 'delta')).toHaveLength(1)
  }, 30_000)
})

describe('orch workflows (CLI)', () => {
  test('create from YAML, list, run --wait, runs, get a run, delete', async () => {
    const { runCli } = await import('../helpers/cli.ts')
    const t = await testServe()
    const dir = tempDir('orch-wf-cli-')
    cleanups.push(dir.cleanup)
    const file = `${dir.path}/pipeline.yaml`
    await Bun.write(
      file,
      [
        'name: pipeline',
        'schedule: "0 2 * * *"',
        'timezone: UTC',
        'steps:',
        '  - { id: draft, type: generate, model: llama3.2, prompt: "draft" }',
        '  - { id: review, type: chat, model: llama3.2, prompt: "review {{steps.draft.output}}", depends_on: [draft] }',
        '',
      ].join('\n'),
    )
    const cli = (...args: string[]) => runCli([...args, '--url', t.url], { cwd: dir.path })
    const created = await cli('workflows', 'create', file, '--json')
    expect(created.code).toBe(0)
    expect(created.json()).toMatchObject({ name: 'pipeline', created: true })
    expect(created.json().next_run_at % 86_400_000).toBe(2 * 3_600_000)

    const list = await cli('workflows', 'list')
    expect(list.stdout).toContain('pipeline')
    expect(list.stdout).toContain('0 2 * * *')

    const run = await cli('workflows', 'run', 'pipeline', '--wait', '--json')
    expect(run.code).toBe(0)
    expect(run.json()).toMatchObject({ state: 'done' })
    expect(run.json().steps[1].output).toBe('review draft')

    const runs = await cli('workflows', 'runs', 'pipeline')
    expect(runs.stdout).toContain(run.json().id)
    const shown = await cli('workflows', 'get', run.json().id)
    expect(shown.stdout).toContain('review draft')

    const again = await cli('workflows', 'create', file)
    expect(again.code).toBe(2)
    expect(again.stderr).toContain('a workflow named "pipeline" exists')
    await Bun.write(
      `${dir.path}/bad.json`,
      JSON.stringify({ name: 'bad', steps: [{ id: 'a', type: 'chat', model: 'm', prompt: 'x', depends_on: ['b'] }] }),
    )
    const bad = await cli('workflows', 'create', `${dir.path}/bad.json`)
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('bad.json: steps.0.depends_on.0: unknown step "b"')

    const deleted = await cli('workflows', 'delete', 'pipeline')
    expect(deleted.code).toBe(0)
    expect((await cli('workflows', 'get', 'pipeline')).code).toBe(1)
  }, 30_000)
})
