import { describe, expect, test } from 'bun:test'
import type { MetricResult } from '../../src/batch/metrics/shared.ts'
import { parseRationale, type RationaleWriter, serveWriter, writeRationales } from '../../src/batch/rationale.ts'
import { metricError } from '../../src/batch/result.ts'
import { ServeClient } from '../../src/client/client.ts'

const result = (id: string, rationale = `rules for ${id}`): MetricResult => ({
  metric_id: id,
  score: 4.2,
  confidence: 0.9,
  rationale,
  evidence: { p95_ms: 120 },
  gaps: [],
})

const metrics = () => ({
  'lb.performance': result('lb.performance'),
  'availability.incidents': result('availability.incidents'),
  'tagging.coverage': metricError('tagging.coverage', 'tagging_coverage.json is not valid JSON'),
})

/** Answers per metric id: a string is the reply, an Error is thrown, 'hang' never answers. */
function fakeWriter(answers: Record<string, string | Error | 'hang'>): RationaleWriter & { prompts: string[] } {
  const prompts: string[] = []
  const writer = async (system: string, user: string) => {
    prompts.push(`${system}\n${user}`)
    const id = (JSON.parse(user) as { metric_id: string }).metric_id
    const answer = answers[id] ?? '{"rationale":"from the model"}'
    if (answer instanceof Error) throw answer
    if (answer === 'hang') return new Promise<string>(() => {})
    return answer
  }
  return Object.assign(writer, { prompts })
}

describe('writeRationales', () => {
  test('without a writer every scored metric keeps its rules rationale, marked rules', async () => {
    const out = await writeRationales(metrics(), undefined)
    expect(out['lb.performance']).toEqual({ ...result('lb.performance'), rationale_source: 'rules' })
    expect(out['tagging.coverage']).toEqual(metricError('tagging.coverage', 'tagging_coverage.json is not valid JSON'))
  })

  test('a metric that could not be scored (score null) is never sent to the model and keeps its own rationale', async () => {
    const writer = fakeWriter({})
    const out = await writeRationales(metrics(), writer)
    expect(out['tagging.coverage']).toEqual(metricError('tagging.coverage', 'tagging_coverage.json is not valid JSON'))
    expect(writer.prompts.some((p) => p.includes('tagging.coverage'))).toBe(false)
  })

  test('a valid JSON answer becomes the rationale, marked llm; the prompt carries id, score, evidence, gaps', async () => {
    const writer = fakeWriter({})
    const out = await writeRationales(metrics(), writer)
    expect(out['lb.performance']).toMatchObject({ rationale: 'from the model', rationale_source: 'llm', score: 4.2 })
    expect(out['availability.incidents']).toMatchObject({ rationale: 'from the model', rationale_source: 'llm' })
    expect(writer.prompts).toHaveLength(2)
    expect(writer.prompts[0]).toContain('JSON only')
    expect(writer.prompts[0]).toContain('"metric_id":"lb.performance","score":4.2,"evidence":{"p95_ms":120},"gaps":[]')
  })

  test.each([
    ['invalid JSON', 'the score is good'],
    ['JSON without a rationale', '{"reason":"x"}'],
    ['an empty rationale', '{"rationale":"  "}'],
    ['a thrown error', new Error('backend down')],
    ['a timeout', 'hang' as const],
  ])('%s keeps the rules rationale and leaves the other metrics alone', async (_name, answer) => {
    const out = await writeRationales(metrics(), fakeWriter({ 'lb.performance': answer }), { timeoutMs: 50 })
    expect(out['lb.performance']).toEqual({ ...result('lb.performance'), rationale_source: 'rules' })
    expect(out['availability.incidents']).toMatchObject({ rationale: 'from the model', rationale_source: 'llm' })
  })

  test('parseRationale trims and rejects non-objects', () => {
    expect(parseRationale('{"rationale":" ok "}')).toBe('ok')
    expect(parseRationale('null')).toBeUndefined()
    expect(parseRationale('"text"')).toBeUndefined()
  })
})

describe('serveWriter', () => {
  test('asks orch serve /api/chat for one JSON answer with the bearer token', async () => {
    let seen: { auth: string | null; body: any } | undefined
    const server = Bun.serve({
      port: 0,
      async fetch(request) {
        seen = { auth: request.headers.get('authorization'), body: await request.json() }
        return Response.json({ message: { role: 'assistant', content: '{"rationale":"served"}' }, done: true })
      },
    })
    try {
      const writer = serveWriter(new ServeClient(`http://127.0.0.1:${server.port}/`, 'secret'), 'llama3.2')
      const out = await writeRationales({ m: result('m') }, writer)
      expect(out.m).toMatchObject({ rationale: 'served', rationale_source: 'llm' })
      expect(seen?.auth).toBe('Bearer secret')
      expect(seen?.body).toMatchObject({ model: 'llama3.2', stream: false, format: 'json', options: { temperature: 0 } })
    } finally {
      server.stop(true)
    }
  })

  test('a serve that does not answer is named in orch words, without the runtime hints', async () => {
    const closed = Bun.serve({ port: 0, fetch: () => new Response('') })
    const port = closed.port
    closed.stop(true)
    const writer = serveWriter(new ServeClient(`http://127.0.0.1:${port}`, undefined), 'llama3.2')
    const error = (await writer('s', 'u', AbortSignal.timeout(5000)).catch((e: Error) => e)) as Error
    expect(error.message).toBe(`http://127.0.0.1:${port}/api/chat: no answer: connection refused (nothing listens on that port)`)
    expect(error.message).not.toMatch(/verbose|Is the computer/)
  })
})
