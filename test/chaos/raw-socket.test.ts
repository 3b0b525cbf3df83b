/**
 * Requests a library client would never send, written to a real socket of a real orch serve: no Host,
 * HTTP/1.0, bad escapes in every parameterised route, absolute-form targets, huge and duplicated headers,
 * bad chunked framing, truncated bodies, pipelined garbage. Each must get a 4xx JSON error (or an honest
 * answer to a valid request) or a closed connection: never a 5xx, a stack, the runtime's error page, or a
 * hang. Run against the default config and with server.token set, where the gates must come first.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { type RawResult, rawRequest } from '../helpers/raw-http.ts'
import { startOpenAndGuarded, type TestServe } from '../helpers/serve.ts'

const TOKEN = 'raw-socket-token-0123456789'
let servers: Awaited<ReturnType<typeof startOpenAndGuarded>>
const open = () => servers.open
const guarded = () => servers.guarded

beforeAll(async () => {
  servers = await startOpenAndGuarded(TOKEN)
})
afterAll(() => servers.stop())

const portOf = (s: TestServe) => Number(new URL(s.url).port)
const BAD_ESCAPES = ['%ff', '%c0', '%zz', '%', '%%', '%00', '%e2%82', '..%2f..%2fetc%2fpasswd']

/** Every route with a parameter, the parameter replaced by each bad escape, for each of its methods. */
function escapeCorpus(s: TestServe): Array<[string, string]> {
  const out: Array<[string, string]> = []
  for (const route of s.server.app.routes) {
    if (!route.path.includes(':')) continue
    for (const bad of BAD_ESCAPES) {
      const path = route.path.replace(/:[a-z_]+/g, bad)
      const body = route.method === 'POST' || route.method === 'PUT' ? '{}' : ''
      out.push([`${route.method} ${path}`, request(route.method, path, { 'content-length': String(body.length) }, body)])
    }
  }
  return out
}

function request(method: string, target: string, headers: Record<string, string> = {}, body = '', version = 'HTTP/1.1'): string {
  const lines = [`${method} ${target} ${version}`, 'Host: 127.0.0.1', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)]
  return `${lines.join('\r\n')}\r\n\r\n${body}`
}

const submit = '{"type":"generate","payload":{"model":"llama3.2","prompt":"raw"}}'
const CORPUS: Array<[string, string | Uint8Array]> = [
  ['no Host, HTTP/1.0', 'GET /health HTTP/1.0\r\n\r\n'],
  ['no Host, HTTP/1.1', 'GET /tasks HTTP/1.1\r\n\r\n'],
  ['empty Host', 'GET /health HTTP/1.1\r\nHost:\r\n\r\n'],
  ['Host with userinfo', 'GET /health HTTP/1.1\r\nHost: a@b\r\n\r\n'],
  ['Host unclosed IPv6', 'GET /health HTTP/1.1\r\nHost: [::1\r\n\r\n'],
  ['Host with a space', 'GET /health HTTP/1.1\r\nHost: local host\r\n\r\n'],
  ['Host with a path', 'GET /health HTTP/1.1\r\nHost: localhost/x\r\n\r\n'],
  ['two Host headers', 'GET /health HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n'],
  ['rebinding Host', 'POST /queue/submit HTTP/1.1\r\nHost: attacker.example\r\nContent-Length: 2\r\n\r\n{}'],
  ['absolute-form target, same host', 'GET http://127.0.0.1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'],
  ['absolute-form target, other host', 'GET http://evil.example/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'],
  ['asterisk target', 'OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'],
  ['authority target', 'CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'],
  ['unknown method', request('BREW', '/tasks')],
  ['lowercase method', request('get', '/health')],
  ['HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'],
  ['HTTP/9.9', request('GET', '/health', {}, '', 'HTTP/9.9')],
  ['no version', 'GET /health\r\n\r\n'],
  ['binary garbage', new Uint8Array(Array.from({ length: 512 }, (_, i) => (i * 37 + 11) % 256))],
  ['NUL in the path', request('GET', '/tasks/a\0b')],
  [
    'non-UTF-8 bytes in the path',
    Buffer.concat([Buffer.from('GET /tasks/'), Buffer.from([0xff, 0xfe, 0xc0]), Buffer.from(' HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')]),
  ],
  ['a 100 KB path', request('GET', `/tasks/${'a'.repeat(100_000)}`)],
  ['a 100 KB header', request('GET', '/health', { 'x-big': 'b'.repeat(100_000) })],
  ['2000 headers', request('GET', '/health', Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`x-h${i}`, 'v'])))],
  ['header without a colon', 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nnocolon\r\n\r\n'],
  ['obsolete line folding', 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\r\n b\r\n\r\n'],
  ['two different Content-Lengths', request('POST', '/queue/submit', { 'content-length': '2', 'Content-Length': '5' }, '{}')],
  ['negative Content-Length', request('POST', '/queue/submit', { 'content-length': '-1' }, '{}')],
  ['Content-Length not a number', request('POST', '/queue/submit', { 'content-length': 'ten' }, '{}')],
  ['huge Content-Length', request('POST', '/queue/submit', { 'content-length': '99999999999999999999' }, '{}')],
  [
    'Content-Length and chunked (smuggling)',
    request('POST', '/queue/submit', { 'content-length': '4', 'transfer-encoding': 'chunked' }, '0\r\n\r\n'),
  ],
  ['chunk size not hex', request('POST', '/queue/submit', { 'transfer-encoding': 'chunked' }, 'zz\r\n{}\r\n0\r\n\r\n')],
  ['chunk size overflows', request('POST', '/queue/submit', { 'transfer-encoding': 'chunked' }, 'ffffffffffffffffff\r\n{}\r\n0\r\n\r\n')],
  ['chunk longer than its size', request('POST', '/queue/submit', { 'transfer-encoding': 'chunked' }, `2\r\n${submit}\r\n0\r\n\r\n`)],
  ['unknown transfer coding', request('POST', '/queue/submit', { 'transfer-encoding': 'gzip, chunked' }, '0\r\n\r\n')],
  ['body that is not JSON', request('POST', '/queue/submit', { 'content-length': '5' }, '{oops')],
  [
    'body that is not UTF-8',
    Buffer.concat([Buffer.from(request('POST', '/api/chat', { 'content-length': '4' })), Buffer.from([0xff, 0xfe, 0xfd, 0xfc])]),
  ],
  ['valid request then pipelined garbage', `${request('GET', '/health')}\x00\x01\x02 GARBAGE\r\n\r\n`],
  ['a token that is not Bearer', request('GET', '/tasks', { authorization: 'Basic Zm9vOmJhcg==' })],
  ['Bearer with an empty token', request('GET', '/tasks', { authorization: 'Bearer ' })],
  ['an overlong token', request('GET', '/tasks', { authorization: `Bearer ${'t'.repeat(8000)}` })],
]

/** What no answer may be: a server error, a stack, the runtime's error page, paths of this machine. */
function expectSafe(name: string, r: RawResult): void {
  const where = `${name}: ${r.status} ${r.body.slice(0, 200)}`
  expect(r.hung, `${name} hung`).toBe(false)
  if (r.status === undefined) {
    expect(r.closed, where).toBe(true)
    return
  }
  // An HTTP version the server does not speak is refused by Bun's HTTP parser itself, before orch sees a
  // request: 505 with an empty body is the protocol's own answer and carries nothing.
  if (r.status === 505) expect(r.body, where).toBe('')
  else expect(r.status, where).toBeLessThan(500)
  expect(r.body, where).not.toMatch(/<html|<!doctype|\bat .+:\d+:\d+|node_modules|\/tmp\/|Bun v\d|verbose/i)
  if (r.status >= 400 && r.body.length > 0) {
    expect(r.headers['content-type'] ?? '', where).toContain('application/json')
    const parsed = JSON.parse(r.body) as { error?: unknown }
    expect(parsed.error, where).toBeDefined()
  }
}

describe.each([
  ['default config', open],
  ['with server.token', guarded],
])('raw socket corpus, %s', (_label, server) => {
  test('each malformed request gets a 4xx JSON error or a closed connection, never a 5xx, a stack or a hang', async () => {
    const s = server()
    const results = await Promise.all(CORPUS.map(async ([name, data]) => [name, await rawRequest(portOf(s), data)] as const))
    for (const [name, r] of results) expectSafe(name, r)
    const byName = new Map(results)
    // The faults found from outside, each answered by the gate that owns it.
    for (const name of ['no Host, HTTP/1.0', 'no Host, HTTP/1.1', 'empty Host', 'Host with userinfo', 'Host unclosed IPv6']) {
      const r = byName.get(name) as RawResult
      if (r.status !== undefined) expect(r.status, name).toBe(400)
    }
    expect(byName.get('no Host, HTTP/1.0')?.status).toBe(400)
    expect(JSON.parse(byName.get('no Host, HTTP/1.0')?.body ?? '{}').error.code).toBe('E_BAD_HOST')
    expect(byName.get('rebinding Host')?.status).toBe(403)
  })

  test('bad escapes in every parameterised route: a 4xx in the route dialect, never a 5xx', async () => {
    const s = server()
    const corpus = escapeCorpus(s)
    expect(corpus.length).toBeGreaterThan(40)
    const results = await Promise.all(corpus.map(async ([name, data]) => [name, await rawRequest(portOf(s), data)] as const))
    for (const [name, r] of results) {
      expectSafe(name, r)
      expect(r.status, name).toBeGreaterThanOrEqual(400)
      const error = JSON.parse(r.body).error
      // Ollama's dialect is a string, OpenAI's and orch's an object with a message.
      if (name.includes(' /api/')) expect(typeof error, name).toBe('string')
      else expect(typeof error.message, name).toBe('string')
    }
  })

  test('every one of those requests is counted in /metrics, none as a 5xx', async () => {
    const s = server()
    await rawRequest(portOf(s), 'GET /health HTTP/1.0\r\n\r\n')
    await rawRequest(portOf(s), request('GET', '/tasks/%ff'))
    const text = await (await s.fetch('/metrics')).text()
    const series = text.split('\n').filter((l) => l.startsWith('orch_http_request_duration_seconds_count'))
    const count = (pattern: RegExp) =>
      series.filter((l) => pattern.test(l)).reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0)
    expect(count(/status="400"/)).toBeGreaterThan(0)
    expect(count(/route="\/tasks\/:id".*status="(404|401)"/)).toBeGreaterThan(0)
    expect(count(/status="5\d\d"/)).toBe(0)
  })
})
