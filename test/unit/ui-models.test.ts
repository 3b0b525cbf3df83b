/** The dashboard's per-model figures from the /metrics exposition, and the layout of a workflow's graph. */
import { describe, expect, test } from 'bun:test'
import { CALL_BUCKETS, Registry } from '../../src/metrics/prometheus.ts'
import {
  type ModelReading,
  modelCalls,
  modelFiguresOf,
  modelHistoryOf,
  modelKey,
  parseSamples,
  ratePerModel,
} from '../../src/server/routes/ui-figures.ts'
import { layoutDag } from '../../src/ui/dag-layout.ts'

/** Calls of two models on two backends, as the engine's metrics record them. */
function exposition(calls: Array<[backend: string, model: string, seconds: number]>, withModelOutcomes = false): string {
  const r = new Registry({ constLabels: { instance: 'x' } })
  const duration = r.histogram('orch_backend_request_duration_seconds', 't', ['backend', 'model', 'kind'], CALL_BUCKETS)
  const ttft = r.histogram('orch_time_to_first_token_seconds', 't', ['backend', 'model'], CALL_BUCKETS)
  const outcomes = withModelOutcomes
    ? r.counter('orch_backend_calls_total', 't', ['backend', 'model', 'kind', 'outcome'])
    : r.counter('orch_backend_calls_total', 't', ['backend', 'kind', 'outcome'])
  for (const [backend, model, s] of calls) {
    duration.labels(backend, model, 'chat').observe(s)
    ttft.labels(backend, model).observe(s / 10)
    const outcome = s > 1 ? 'error' : 'success'
    if (withModelOutcomes) outcomes.labels(backend, model, 'chat', outcome).inc()
    else outcomes.labels(backend, 'chat', outcome).inc()
  }
  return r.render()
}

const TRAFFIC: Array<[string, string, number]> = [
  ['gpu1', 'llama3.2', 0.2],
  ['gpu2', 'llama3.2', 0.4],
  ['gpu1', 'qwen "2.5"', 0.3],
  ['gpu1', 'qwen "2.5"', 2],
]

describe('modelFiguresOf', () => {
  test('one row per model, summed over its backends, and one per model and backend', () => {
    const { models, by_backend } = modelFiguresOf(parseSamples(exposition(TRAFFIC)), () => null)
    expect(models.map((m) => [m.model, m.backends, m.calls])).toEqual([
      ['llama3.2', ['gpu1', 'gpu2'], 2],
      ['qwen "2.5"', ['gpu1'], 2],
    ])
    expect(by_backend.map((m) => [m.model, m.backend, m.calls])).toEqual([
      ['llama3.2', 'gpu1', 1],
      ['llama3.2', 'gpu2', 1],
      ['qwen "2.5"', 'gpu1', 2],
    ])
    const llama = models[0]
    expect(llama?.latency_s.count).toBe(2)
    expect(llama?.latency_s.mean).toBeCloseTo(0.3)
    expect(llama?.ttft_s.count).toBe(2)
    // The outcome series carry no model label: no per-model errors to show.
    expect(llama?.errors).toBeNull()
  })

  test('errors per model where the outcome series carry a model label', () => {
    const { models } = modelFiguresOf(parseSamples(exposition(TRAFFIC, true)), () => null)
    expect(models.map((m) => [m.model, m.errors])).toEqual([
      ['llama3.2', 0],
      ['qwen "2.5"', 1],
    ])
  })
})

describe('per-model rates', () => {
  const reading = (at: number, traffic: Array<[string, string, number]>): ModelReading => ({
    at,
    calls: modelCalls(parseSamples(exposition(traffic))),
  })
  test('calls per second of a model and of a model on a backend, between readings', () => {
    const a = reading(0, TRAFFIC.slice(0, 1))
    const b = reading(2000, TRAFFIC)
    expect(ratePerModel([a, b], b, modelKey('llama3.2'), 60_000)).toBe(0.5)
    expect(ratePerModel([a, b], b, modelKey('llama3.2', 'gpu2'), 60_000)).toBe(0.5)
    expect(ratePerModel([a, b], b, modelKey('qwen "2.5"'), 60_000)).toBe(1)
    // Without an earlier reading in the window there is no rate.
    expect(ratePerModel([b], b, modelKey('llama3.2'), 60_000)).toBeNull()
    expect(ratePerModel([a, b], b, modelKey('llama3.2'), 1000)).toBeNull()
    expect(modelHistoryOf([a, b])).toEqual([{ t: 2, per_model: { 'llama3.2': 0.5, 'qwen "2.5"': 1 } }])
  })
})

describe('layoutDag', () => {
  test('a step sits one column right of its deepest dependency; rows in definition order', () => {
    const { placed } = layoutDag([
      { id: 'a', depends_on: [] },
      { id: 'b', depends_on: ['a'] },
      { id: 'c', depends_on: ['a'] },
      { id: 'd', depends_on: ['b', 'a'] },
      { id: 'e', depends_on: ['missing'] },
    ])
    expect(placed.map((p) => [p.id, p.layer, p.row])).toEqual([
      ['a', 0, 0],
      ['b', 1, 0],
      ['c', 1, 1],
      ['d', 2, 0],
      ['e', 0, 1],
    ])
  })

  test('a cycle, which the server refuses, still lays out', () => {
    const { placed } = layoutDag([
      { id: 'a', depends_on: ['b'] },
      { id: 'b', depends_on: ['a'] },
    ])
    expect(placed).toHaveLength(2)
  })
})
