/**
 * Deeply nested JSON, the denial of service found from outside: a ~500 KB body nested 10⁵ deep used to
 * exhaust the stack (500) and hold the event loop ~0.9 s per request. Every route that reads JSON now
 * measures the depth on the text first: 400 naming server.max_json_depth, in the route's dialect, before
 * anything recurses, and never forwarded to a backend.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { jsonDepth } from '../../src/server/http.ts'
import { startTestServe, type TestServe } from '../helpers/serve.ts'

let s: TestServe
beforeAll(async () => {
  s = await startTestServe()
})
afterAll(() => s.stop())

const DEEP = 100_000
const nest = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`
/** `template` with the placeholder "DEEP" replaced by an array nested `n` levels. */
const body = (template: unknown, n = DEEP) => JSON.stringify(template).replace('"DEEP"', nest(n))

const msg = [{ role: 'user', content: 'hi' }]
const CASES: Array<[string, string, unknown]> = [
  ['/queue/submit payload', '/queue/submit', { type: 'generate', payload: { model: 'llama3.2', prompt: 'x', options: { a: 'DEEP' } } }],
  ['/queue/submit top', '/queue/submit', 'DEEP'],
  ['/api/chat options', '/api/chat', { model: 'llama3.2', messages: msg, stream: false, options: { a: 'DEEP' } }],
  ['/api/chat format', '/api/chat', { model: 'llama3.2', messages: msg, stream: false, format: { type: 'object', x: 'DEEP' } }],
  ['/api/chat tools', '/api/chat', { model: 'llama3.2', messages: msg, stream: false, tools: ['DEEP'] }],
  ['/api/generate', '/api/generate', { model: 'llama3.2', prompt: 'x', stream: false, options: { a: 'DEEP' } }],
  ['/api/embed', '/api/embed', { model: 'nomic-embed-text', input: 'DEEP' }],
  ['/v1/chat/completions tools', '/v1/chat/completions', { model: 'llama3.2', messages: msg, tools: ['DEEP'] }],
  ['/v1/chat/completions response_format', '/v1/chat/completions', { model: 'llama3.2', messages: msg, response_format: 'DEEP' }],
  ['/v1/embeddings', '/v1/embeddings', { model: 'nomic-embed-text', input: 'DEEP' }],
  ['/v1/responses input', '/v1/responses', { model: 'llama3.2', input: [{ role: 'user', content: 'DEEP' }] }],
  [
    '/workflows',
    '/workflows',
    { name: 'deep', steps: [{ id: 'a', type: 'generate', model: 'llama3.2', prompt: 'x', options: { a: 'DEEP' } }] },
  ],
]

describe('deeply nested JSON', () => {
  test('10⁵ levels on every JSON route: 400 naming server.max_json_depth in the route dialect, the backend never called', async () => {
    const calls = s.fakes[0]?.calls.length ?? 0
    for (const [name, path, template] of CASES) {
      const r = await s.fetch(path, { method: 'POST', body: body(template) })
      expect(r.status, name).toBe(400)
      const error = ((await r.json()) as { error: string | { message: string } }).error
      const text = typeof error === 'string' ? error : error.message
      expect(text, name).toContain('server.max_json_depth')
      if (path.startsWith('/api/')) expect(typeof error, name).toBe('string')
    }
    expect(s.fakes[0]?.calls.length ?? 0).toBe(calls)
  })

  test('at the limit a body is accepted, one level over it is refused', async () => {
    const limit = s.config.server.max_json_depth
    // The options object is level 2, payload level 1, the task level... the whole body counts from 1.
    const at = { type: 'generate', payload: { model: 'llama3.2', prompt: 'x', options: { a: 'DEEP' } } }
    const ok = await s.fetch('/queue/submit', { method: 'POST', body: body(at, limit - 3) })
    expect(ok.status).toBe(202)
    const over = await s.fetch('/queue/submit', { method: 'POST', body: body(at, limit - 2) })
    expect(over.status).toBe(400)
  })

  test('eight deep bodies at once do not hold the event loop: /health answers meanwhile', async () => {
    const big = body(CASES[2]?.[2])
    const started = performance.now()
    const deep = Array.from({ length: 8 }, () => s.fetch('/api/chat', { method: 'POST', body: big }).then((r) => r.status))
    const health = await s.fetch('/health')
    const healthMs = performance.now() - started
    expect(health.status).toBe(200)
    expect(await Promise.all(deep)).toEqual(Array(8).fill(400))
    // Eight 200 KB bodies scanned and refused, and /health answered among them: well under the 6.5 s
    // the same eight used to hold it.
    expect(healthMs).toBeLessThan(1000)
  })
})

describe('jsonDepth', () => {
  test('counts arrays and objects, skips strings with brackets and escaped quotes, stops early', () => {
    expect(jsonDepth('1', 10)).toBe(0)
    expect(jsonDepth('{}', 10)).toBe(1)
    expect(jsonDepth('[{"a":[1,{"b":2}]}]', 10)).toBe(4)
    expect(jsonDepth('["[[[[", "\\"[[[", {"k}}}": "]]]"}]', 10)).toBe(2)
    expect(jsonDepth('[[],[],[[]]]', 10)).toBe(3)
    expect(jsonDepth(nest(1000), 64)).toBe(65)
  })
})
