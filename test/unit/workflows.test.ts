import { afterEach, describe, expect, test } from 'bun:test'
import * as v from 'valibot'
import type { OrchEvent } from '../../src/bus/local.ts'
import { LocalBus } from '../../src/bus/local.ts'
import { configureLogging } from '../../src/core/log.ts'
import { openStore } from '../../src/store/db.ts'
import { MAX_IDEMPOTENCY_KEY_LENGTH } from '../../src/tasks/fields.ts'
import { parseSubmit } from '../../src/tasks/input.ts'
import { SqliteTaskQueue as TaskStore } from '../../src/tasks/sqlite.ts'
import { latestRunAtOrBefore, nextRunAfter, planFire } from '../../src/workflows/cron.ts'
import { stepKey } from '../../src/workflows/runs.ts'
import { checkDefinition, type Definition, DefinitionSchema, findCycle } from '../../src/workflows/schema.ts'
import { WorkflowService } from '../../src/workflows/service.ts'
import { outputText, stepRequest } from '../../src/workflows/step-request.ts'
import { decodeRunCursor, encodeRunCursor, newId, WorkflowStore } from '../../src/workflows/store.ts'
import { renderTemplate, templateRefs } from '../../src/workflows/template.ts'
import { tempDir } from '../helpers/cli.ts'

configureLogging({ level: 'error' })

const step = (id: string, depends_on: string[] = [], prompt = `do ${id}`) => ({
  id,
  type: 'generate' as const,
  model: 'm',
  prompt,
  depends_on,
})
const def = (steps: Definition['steps'], extra: Partial<Definition> = {}): Definition => ({ name: 'wf', steps, ...extra })
const fields = (d: Definition) => checkDefinition(d, Date.UTC(2025, 0, 1)).map((i) => `${i.field}: ${i.message}`)

describe('validation', () => {
  test('a sound diamond has no issues', () => {
    expect(
      fields(def([step('a'), step('b', ['a']), step('c', ['a']), step('d', ['b', 'c'], '{{steps.b.output}} {{ steps.c.output }}')])),
    ).toEqual([])
  })

  test('unknown dependencies, duplicate ids and self-dependencies are named by field', () => {
    expect(fields(def([step('a', ['zz'])]))).toEqual(['steps.0.depends_on.0: unknown step "zz"'])
    expect(fields(def([step('a'), step('a')]))).toEqual(['steps.1.id: duplicate step id "a" (also steps.0)'])
    expect(fields(def([step('a', ['a'])]))).toEqual(['steps.0.depends_on.0: step "a" depends on itself'])
  })

  test('a cycle is named in execution order', () => {
    const steps = [step('a', ['c']), step('b', ['a']), step('c', ['b']), step('d')]
    expect(findCycle(steps)).toEqual(['a', 'b', 'c', 'a'])
    expect(fields(def(steps))).toEqual(['steps.0.depends_on: dependency cycle: a → b → c → a'])
    expect(findCycle([step('a'), step('b', ['a'])])).toBeUndefined()
  })

  test('templates may reference only steps they (transitively) depend on, and only .output', () => {
    expect(fields(def([step('a'), step('b', ['a']), step('c', ['b'], 'x {{steps.a.output}}')]))).toEqual([])
    expect(fields(def([step('a'), step('b', [], '{{steps.a.output}}')]))).toEqual([
      'steps.1.prompt: {{steps.a.output}}: step "a" is not in depends_on (directly or through other steps)',
    ])
    expect(fields(def([step('a', [], '{{steps.nope.output}}')]))).toEqual(['steps.0.prompt: {{steps.nope.output}}: unknown step "nope"'])
    expect(fields(def([step('a'), step('b', ['a'], '{{steps.a.result}}')]))).toEqual([
      'steps.1.prompt: {{steps.a.result}}: only steps.<id>.output can be referenced',
    ])
    const chat = { id: 'c', type: 'chat' as const, model: 'm', messages: [{ role: 'user' as const, content: '{{steps.x.output}}' }] }
    expect(fields(def([chat]))).toEqual(['steps.0.messages.0.content: {{steps.x.output}}: unknown step "x"'])
  })

  test('each step type needs its own input', () => {
    expect(fields(def([{ id: 'a', type: 'chat', model: 'm' }]))).toEqual(['steps.0.prompt: a chat step needs prompt or messages'])
    expect(fields(def([{ id: 'a', type: 'embed', model: 'm', prompt: 'x' }]))).toEqual([
      'steps.0.input: an embed step needs input (a string or an array of strings)',
    ])
    expect(fields(def([{ id: 'a', type: 'generate', model: 'm', input: 'x', prompt: 'p' }]))).toEqual([
      'steps.0.input: a generate step takes a prompt, not input',
    ])
  })

  test('bad cron expressions and timezones are named', () => {
    expect(fields(def([step('a')], { schedule: '61 * * * *' }))[0]).toStartWith('schedule: invalid cron expression "61 * * * *"')
    expect(fields(def([step('a')], { schedule: 'every day' }))[0]).toStartWith('schedule: invalid cron expression')
    expect(fields(def([step('a')], { schedule: '0 2 * * *', timezone: 'Mars/Olympus' }))[0]).toStartWith(
      'timezone: unknown timezone "Mars/Olympus"',
    )
    expect(fields(def([step('a')], { schedule: '0 2 * * *', timezone: 'Europe/Berlin' }))).toEqual([])
    expect(fields(def([step('a')], { schedule: '* * * * * *' }))).toEqual([])
  })

  test('the schema refuses unknown keys and wrong types with a path', () => {
    const bad = v.safeParse(DefinitionSchema, {
      name: 'x',
      steps: [{ id: 'a', type: 'generate', model: 'm', prompt: 'p', dependsOn: ['b'] }],
    })
    expect(bad.success).toBe(false)
    expect(v.getDotPath(bad.issues?.[0] as v.BaseIssue<unknown>)).toBe('steps.0.dependsOn')
    const type = v.safeParse(DefinitionSchema, { name: 'x', steps: [{ id: 'a', type: 'sing', model: 'm' }] })
    expect(v.getDotPath(type.issues?.[0] as v.BaseIssue<unknown>)).toBe('steps.0.type')
  })
})

describe('the task fields a definition carries', () => {
  const withTenant = (tenant: string) => ({ name: 'x', tenant, steps: [step('a')] })
  const taskTakes = (tenant: string) => {
    try {
      parseSubmit({ type: 'generate', model: 'm', payload: { prompt: 'p' }, tenant }, null)
      return true
    } catch {
      return false
    }
  }

  test('tenant: the verdict of POST /queue/submit, sample for sample', () => {
    const samples = [
      'team-a',
      'a.b:c@d_e-f',
      'x'.repeat(128),
      'x'.repeat(129),
      '',
      'a b',
      'a\nb',
      'a\u0000b',
      `${'x'.repeat(150)}\u0000\n${'y'.repeat(151)}`,
      'ü',
      'a/b',
    ]
    const verdicts = samples.map((tenant) => [tenant, v.is(DefinitionSchema, withTenant(tenant))])
    expect(verdicts).toEqual(samples.map((tenant) => [tenant, taskTakes(tenant)]))
    expect(verdicts.filter(([, ok]) => ok)).toHaveLength(3)
    const refused = v.safeParse(DefinitionSchema, withTenant('a\nb'))
    expect(v.getDotPath(refused.issues?.[0] as v.BaseIssue<unknown>)).toBe('tenant')
  })

  test('model: 1 to 256 characters, no control characters', () => {
    const withModel = (model: string) => ({ name: 'x', steps: [{ ...step('a'), model }] })
    expect(v.is(DefinitionSchema, withModel('x'.repeat(256)))).toBe(true)
    for (const model of ['', 'x'.repeat(257), 'a\tb', 'a\rb', 'a\u001bb', 'a\u0085b']) {
      const result = v.safeParse(DefinitionSchema, withModel(model))
      expect([JSON.stringify(model), v.getDotPath(result.issues?.[0] as v.BaseIssue<unknown>)]).toEqual([
        JSON.stringify(model),
        'steps.0.model',
      ])
    }
  })

  test("a step's idempotency key (wf:<run>:<step>) stays within the task API's limit for the longest ids", () => {
    const run = newId('run', Number.MAX_SAFE_INTEGER)
    const key = stepKey(run, 'x'.repeat(64))
    expect(v.is(DefinitionSchema, { name: 'x', steps: [step('x'.repeat(64))] })).toBe(true)
    expect(v.is(DefinitionSchema, { name: 'x', steps: [step('x'.repeat(65))] })).toBe(false)
    expect(key.length).toBeLessThanOrEqual(MAX_IDEMPOTENCY_KEY_LENGTH)
    expect(key).not.toMatch(/[\u0000-\u001f]/)
  })
})

describe('run cursors', () => {
  test('a cursor comes back as the key it was made from; anything else is not a cursor', () => {
    const key = { created_at: 1_750_000_000_123, id: newId('run', 1_750_000_000_123) }
    expect(decodeRunCursor(encodeRunCursor(key))).toEqual(key)
    for (const bad of ['', 'x', '.run_a', 'abc.def', '1.run_', 'zzzzzzzzzzzz.run_a', '1.run_a;drop'])
      expect(decodeRunCursor(bad)).toBeUndefined()
  })
})

describe('templates', () => {
  test('references are found and filled; other braces stay', () => {
    expect(templateRefs('a {{steps.x.output}} b {{ steps.y-2.output }} {{name}}').map((r) => r.step)).toEqual(['x', 'y-2'])
    const outputs = new Map([
      ['x', 'X!'],
      ['y-2', 'Y'],
    ])
    expect(renderTemplate('a {{steps.x.output}} b {{ steps.y-2.output }} {{name}}', outputs)).toBe('a X! b Y {{name}}')
    expect(() => renderTemplate('{{steps.z.output}}', outputs)).toThrow('has no output')
  })

  test('outputs: chat content, generate response, embeddings as JSON', () => {
    expect(outputText('chat', { message: { role: 'assistant', content: 'hi' } })).toBe('hi')
    expect(outputText('generate', { response: 'yo' })).toBe('yo')
    expect(outputText('embed', { embeddings: [[1, 2]] })).toBe('[[1,2]]')
  })

  test('step requests are Ollama requests with templates filled', () => {
    const outputs = new Map([['a', 'AAA']])
    const chat = {
      id: 'c',
      type: 'chat' as const,
      model: 'm',
      prompt: 'say {{steps.a.output}}',
      system: 'be brief',
      options: { temperature: 0 },
    }
    expect(stepRequest(chat, outputs)).toEqual({
      model: 'm',
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'say AAA' },
      ],
      options: { temperature: 0 },
    })
    expect(stepRequest({ id: 'e', type: 'embed', model: 'n', input: ['{{steps.a.output}}', 'z'] }, outputs)).toEqual({
      model: 'n',
      input: ['AAA', 'z'],
    })
    expect(stepRequest({ id: 'g', type: 'generate', model: 'm', prompt: '{{steps.a.output}}' }, outputs)).toEqual({
      model: 'm',
      prompt: 'AAA',
    })
  })
})

describe('schedules (croner)', () => {
  const tz = 'America/New_York'

  test('next run of "0 2 * * *" in a fixed timezone, across a DST change', () => {
    // 2 AM New York is 07:00 UTC in winter, 06:00 UTC in summer.
    expect(nextRunAfter('0 2 * * *', tz, Date.UTC(2025, 0, 10, 12))).toBe(Date.UTC(2025, 0, 11, 7))
    expect(nextRunAfter('0 2 * * *', tz, Date.UTC(2025, 6, 10, 12))).toBe(Date.UTC(2025, 6, 11, 6))
    expect(nextRunAfter('0 2 * * *', 'UTC', Date.UTC(2025, 0, 10, 2))).toBe(Date.UTC(2025, 0, 11, 2))
    expect(latestRunAtOrBefore('0 2 * * *', 'UTC', Date.UTC(2025, 0, 10, 2))).toBe(Date.UTC(2025, 0, 10, 2))
  })

  test('a schedule not yet due does not fire; a due one fires for its time', () => {
    const next = Date.UTC(2025, 0, 10, 7)
    expect(planFire('0 2 * * *', tz, next, next - 1)).toBeUndefined()
    expect(planFire('0 2 * * *', tz, next, next + 250)).toEqual({ scheduledFor: next, missed: false, next: Date.UTC(2025, 0, 11, 7) })
  })

  test('after downtime only the latest missed occurrence runs', () => {
    const missed = Date.UTC(2025, 0, 10, 7)
    const now = Date.UTC(2025, 0, 13, 9)
    expect(planFire('0 2 * * *', tz, missed, now)).toEqual({
      scheduledFor: Date.UTC(2025, 0, 13, 7),
      missed: true,
      next: Date.UTC(2025, 0, 14, 7),
    })
  })
})

describe('runs over a real task store (no HTTP)', () => {
  const cleanups: Array<() => void | Promise<void>> = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })

  function open(home: string, polls: { pollMs?: number; idlePollMs?: number } = {}) {
    const store = openStore(home, { synchronous: 'NORMAL' })
    const tasks = new TaskStore(store, {
      retry: { maxAttempts: 1, baseMs: 10, maxMs: 10 },
      maxStalled: 1,
      leaseMs: 30_000,
      agingMs: 10_000,
    })
    const bus = new LocalBus()
    const events: OrchEvent[] = []
    bus.subscribe((e) => events.push(e))
    const service = new WorkflowService({ store: new WorkflowStore(store), tasks, bus, pollMs: 50, reconcileMs: 50, ...polls })
    service.start()
    const close = async () => {
      await service.stop()
      store.close()
    }
    cleanups.push(close)
    return { store, tasks, service, events, close }
  }

  const stepOf = (key: string | null) => String(key).split(':')[2] ?? '?'

  /** Claim what is queued and answer each generate step with "<id>(<prompt>)"; the step ids of each claim round. */
  function work(tasks: TaskStore, order: string[][], fail?: string): void {
    const claimed = tasks.claim('test', 100)
    if (claimed.length === 0) return
    order.push(claimed.map((t) => stepOf(t.idempotency_key)).sort())
    for (const t of claimed) {
      const id = stepOf(t.idempotency_key)
      const prompt = (t.payload as { prompt: string }).prompt
      if (id === fail) tasks.fail(t.id, 'test', { code: 'E_BAD', message: 'bad request', retryable: false })
      else tasks.complete(t.id, 'test', { response: `${id}(${prompt})` })
    }
  }

  const diamond = def([
    step('a'),
    step('b', ['a'], 'b<{{steps.a.output}}>'),
    step('c', ['a']),
    step('d', ['b', 'c'], '{{steps.b.output}}+{{steps.c.output}}'),
  ])

  async function until(check: () => boolean, ms = 5000) {
    const deadline = Date.now() + ms
    while (!check()) {
      if (Date.now() > deadline) throw new Error('timed out')
      await Bun.sleep(5)
    }
  }

  test('with no run in flight the schedule timer sleeps idlePollMs; with one, pollMs', async () => {
    const dir = tempDir('orch-wf-')
    cleanups.push(dir.cleanup)
    const { service } = open(dir.path, { pollMs: 20, idlePollMs: 400 })
    const ticks = { n: 0 }
    const tick = service.tick.bind(service)
    service.tick = () => {
      ticks.n++
      return tick()
    }
    service.create(diamond)
    await Bun.sleep(300)
    // Nothing in flight: not one wake-up in 300 ms (the pollMs of 20 would have made about 15).
    expect(ticks.n).toBe(0)
    await service.trigger('wf') // its tasks stay queued: the run stays in flight
    ticks.n = 0
    await Bun.sleep(300)
    expect(ticks.n).toBeGreaterThanOrEqual(5)
  })

  test('a diamond runs in dependency order and d sees b and c', async () => {
    const dir = tempDir('orch-wf-')
    cleanups.push(dir.cleanup)
    const { tasks, service, events } = open(dir.path)
    service.create(diamond)
    const run = await service.trigger('wf')
    const order: string[][] = []
    await until(() => {
      work(tasks, order)
      return service.run(run.id).state === 'done'
    })
    expect(order).toEqual([['a'], ['b', 'c'], ['d']])
    const d = service.run(run.id).steps.find((s) => s.id === 'd')
    expect(d?.output).toBe('d(b(b<a(do a)>)+c(do c))')
    const changes = events.filter((e) => e.type === 'workflow').map((e) => e.data.change)
    expect(changes[0]).toBe('workflow_created')
    expect(changes).toContain('run_started')
    expect(changes.filter((c) => c === 'step_submitted')).toHaveLength(4)
    expect(changes.at(-1)).toBe('run_finished')
  }, 20_000)

  test('a failed step fails the run; its dependents are skipped', async () => {
    const dir = tempDir('orch-wf-')
    cleanups.push(dir.cleanup)
    const { tasks, service } = open(dir.path)
    service.create(diamond)
    const run = await service.trigger('wf')
    const order: string[][] = []
    await until(() => {
      work(tasks, order, 'b')
      return service.run(run.id).state === 'failed'
    })
    const view = service.run(run.id)
    expect(view.error).toBe('step "b" failed: bad request')
    expect(Object.fromEntries(view.steps.map((s) => [s.id, s.state]))).toEqual({ a: 'done', b: 'failed', c: 'done', d: 'skipped' })
  }, 20_000)

  test('a restart continues a run whose tasks finished while it was down', async () => {
    const dir = tempDir('orch-wf-')
    cleanups.push(dir.cleanup)
    const first = open(dir.path)
    first.service.create(diamond)
    const run = await first.service.trigger('wf')
    // The service stops; a's task then finishes while it is down (another process ran it).
    await first.service.stop()
    const order: string[][] = []
    work(first.tasks, order)
    await first.close()
    const second = open(dir.path)
    await until(() => {
      work(second.tasks, order)
      return second.service.run(run.id).state === 'done'
    })
    expect(order).toEqual([['a'], ['b', 'c'], ['d']])
    expect(second.tasks.counts().done).toBe(4)
  }, 20_000)

  test('a stored definition the schema now refuses (an older orch stored it) fails its run; no task is made', async () => {
    const dir = tempDir('orch-wf-')
    cleanups.push(dir.cleanup)
    const { store, tasks, service } = open(dir.path)
    // Written straight to the store, as a definition from before tenants were held to the task rule.
    const bad = { ...diamond, name: 'old', tenant: 'bad tenant\n' }
    new WorkflowStore(store).insert(bad, 'UTC', null, Date.now())
    const run = await service.trigger('old')
    const view = service.run(run.id)
    expect(view.state).toBe('failed')
    expect(view.error).toContain('tenant: expected 1 to 128 of letters, digits')
    expect(view.steps.map((s) => s.state)).toEqual(['skipped', 'skipped', 'skipped', 'skipped'])
    expect(tasks.list().tasks).toEqual([])
  }, 20_000)

  test('a due schedule creates one run per occurrence, even when two services share the file', async () => {
    const dir = tempDir('orch-wf-')
    cleanups.push(dir.cleanup)
    const one = open(dir.path)
    const two = open(dir.path)
    one.service.create(def([step('a')], { name: 'tick', schedule: '* * * * * *', timezone: 'UTC' }))
    await until(() => one.service.runs('tick').runs.length >= 2, 5000)
    const { runs } = two.service.runs('tick')
    const occurrences = runs.map((r) => r.scheduled_for)
    expect(new Set(occurrences).size).toBe(occurrences.length)
    expect(runs.every((r) => r.trigger === 'schedule' && (r.scheduled_for ?? 0) % 1000 === 0)).toBe(true)
  }, 20_000)
})
