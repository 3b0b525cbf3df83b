import { describe, expect, test } from 'bun:test'
import { escapeHelp, escapeLabelValue, formatValue, Registry } from '../../src/metrics/prometheus.ts'

const lines = (text: string) => text.trimEnd().split('\n')

describe('metrics registry: exposition format 0.0.4', () => {
  test('a counter gets HELP, TYPE and the _total suffix; const labels come first', () => {
    const r = new Registry({ constLabels: { instance: 'host-1' } })
    r.counter('orch_things', 'Things done', ['kind']).labels('a').inc(2)
    expect(lines(r.render())).toEqual([
      '# HELP orch_things_total Things done',
      '# TYPE orch_things_total counter',
      'orch_things_total{instance="host-1",kind="a"} 2',
    ])
  })

  test('a name already ending in _total is kept as it is', () => {
    const r = new Registry()
    r.counter('orchestrator_task_errors_total', 'Errors').labels().inc()
    expect(r.render()).toContain('\norchestrator_task_errors_total 1\n')
    expect(r.render()).not.toContain('_total_total')
  })

  test('a series without labels has no braces; the text ends with a newline', () => {
    const r = new Registry()
    r.gauge('env_queue_depth', 'Queue').labels().set(3)
    const text = r.render()
    expect(text.endsWith('3\n')).toBe(true)
    expect(lines(text)[2]).toBe('env_queue_depth 3')
  })

  test('label values escape backslash, double quote and newline', () => {
    expect(escapeLabelValue('a\\b"c\nd')).toBe('a\\\\b\\"c\\nd')
    const r = new Registry({ constLabels: { instance: 'h"1' } })
    r.gauge('g', 'G', ['model']).labels('we\\ird "model"\nname').set(1)
    expect(r.render()).toContain('g{instance="h\\"1",model="we\\\\ird \\"model\\"\\nname"} 1')
  })

  test('HELP escapes backslash and newline but not quotes', () => {
    expect(escapeHelp('a\\b\n"c"')).toBe('a\\\\b\\n"c"')
    const r = new Registry()
    r.gauge('g', 'two\nlines "quoted" C:\\path')
    expect(lines(r.render())[0]).toBe('# HELP g two\\nlines "quoted" C:\\\\path')
  })

  test('special values: +Inf, -Inf, NaN', () => {
    expect(formatValue(Number.POSITIVE_INFINITY)).toBe('+Inf')
    expect(formatValue(Number.NEGATIVE_INFINITY)).toBe('-Inf')
    expect(formatValue(Number.NaN)).toBe('NaN')
    expect(formatValue(0.25)).toBe('0.25')
    expect(formatValue(1e21)).toBe('1e+21')
  })

  test('a histogram renders cumulative buckets with le (inclusive), +Inf, _sum and _count', () => {
    const r = new Registry({ constLabels: { instance: 'i' } })
    const h = r.histogram('wait_seconds', 'Wait', ['backend'], [0.1, 1, 5]).labels('b1')
    for (const v of [0.05, 0.1, 0.5, 1, 7]) h.observe(v)
    expect(lines(r.render())).toEqual([
      '# HELP wait_seconds Wait',
      '# TYPE wait_seconds histogram',
      'wait_seconds_bucket{instance="i",backend="b1",le="0.1"} 2',
      'wait_seconds_bucket{instance="i",backend="b1",le="1"} 4',
      'wait_seconds_bucket{instance="i",backend="b1",le="5"} 4',
      'wait_seconds_bucket{instance="i",backend="b1",le="+Inf"} 5',
      'wait_seconds_sum{instance="i",backend="b1"} 8.65',
      'wait_seconds_count{instance="i",backend="b1"} 5',
    ])
  })

  test('a histogram without any labels puts le alone in braces', () => {
    const r = new Registry()
    r.histogram('d_seconds', 'D', [], [1]).labels().observe(2)
    expect(lines(r.render()).slice(2)).toEqual([
      'd_seconds_bucket{le="1"} 0',
      'd_seconds_bucket{le="+Inf"} 1',
      'd_seconds_sum 2',
      'd_seconds_count 1',
    ])
  })

  test('a family without series renders its HELP and TYPE only', () => {
    const r = new Registry()
    r.gauge('empty', 'Nothing yet', ['backend'])
    expect(lines(r.render())).toEqual(['# HELP empty Nothing yet', '# TYPE empty gauge'])
  })

  test('families render in registration order, series in creation order', () => {
    const r = new Registry()
    const b = r.gauge('b', 'B', ['x'])
    r.gauge('a', 'A').labels().set(1)
    b.labels('2').set(2)
    b.labels('1').set(1)
    const text = r.render()
    expect(text.indexOf('# HELP b')).toBeLessThan(text.indexOf('# HELP a'))
    expect(text.indexOf('b{x="2"}')).toBeLessThan(text.indexOf('b{x="1"}'))
  })

  test('labels() returns the same series for the same values', () => {
    const r = new Registry()
    const f = r.counter('c', 'C', ['a', 'b'])
    expect(f.labels('x', 'y')).toBe(f.labels('x', 'y'))
    expect(f.labels('x', 'y')).not.toBe(f.labels('xy', ''))
    expect(f.size).toBe(2)
  })

  test('gauges go up and down; counters only up (set mirrors a count kept elsewhere)', () => {
    const r = new Registry()
    const g = r.gauge('g', 'G').labels()
    g.inc(5)
    g.dec(2)
    expect(g.value).toBe(3)
    const c = r.counter('c', 'C').labels()
    expect(() => c.inc(-1)).toThrow('only goes up')
    c.set(42)
    expect(r.render()).toContain('c_total 42')
  })

  test('collectors run before each render; reset drops series that are gone', () => {
    const r = new Registry()
    const up = r.gauge('up_backends', 'Up', ['backend'])
    let backends = ['a', 'b']
    r.onCollect(() => {
      up.reset()
      for (const b of backends) up.labels(b).set(1)
    })
    expect(r.render()).toContain('up_backends{backend="b"} 1')
    backends = ['a']
    const text = r.render()
    expect(text).toContain('up_backends{backend="a"} 1')
    expect(text).not.toContain('backend="b"')
  })

  test('refuses invalid names, repeated registrations and wrong label counts', () => {
    const r = new Registry({ constLabels: { instance: 'i' } })
    expect(() => r.gauge('1bad', 'x')).toThrow('invalid metric name')
    expect(() => r.gauge('bad-name', 'x')).toThrow('invalid metric name')
    expect(() => r.gauge('g', 'x', ['bad-label'])).toThrow('invalid label name')
    expect(() => r.gauge('g2', 'x', ['__reserved'])).toThrow('invalid label name')
    expect(() => r.gauge('g3', 'x', ['instance'])).toThrow('label name repeats')
    expect(() => new Registry({ constLabels: { 'no-dash': 'x' } })).toThrow('invalid label name')
    r.gauge('twice', 'x')
    expect(() => r.gauge('twice', 'x')).toThrow('registered twice')
    const f = r.gauge('pair', 'x', ['a', 'b'])
    expect(() => f.labels('only-one')).toThrow('takes 2 label values')
  })

  test('refuses bad histogram buckets and the le label', () => {
    const r = new Registry()
    expect(() => r.histogram('h1', 'x', ['le'], [1])).toThrow('reserved')
    expect(() => r.histogram('h2', 'x', [], [1, 1])).toThrow('strictly increasing')
    expect(() => r.histogram('h3', 'x', [], [2, 1])).toThrow('strictly increasing')
    expect(() => r.histogram('h4', 'x', [], [])).toThrow('strictly increasing')
    // +Inf is always added; a given one is not repeated.
    r.histogram('h5', 'x', [], [1, Number.POSITIVE_INFINITY]).labels().observe(3)
    expect(r.render().match(/le="\+Inf"/g)).toHaveLength(1)
  })
})
