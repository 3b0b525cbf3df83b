/**
 * Fuzzing every route of orch serve with fast-check: random and mutated bodies, queries, path parameters
 * and headers, sent in process through `app.fetch` (the same handler Bun.serve calls). A finding is any
 * 5xx, any answer carrying a stack, a runtime message or a path of this machine, or a request that does
 * not end. Used by test/chaos/fuzz.test.ts (CI counts) and scripts/chaos/fuzz.ts (large counts).
 */
import fc from 'fast-check'
import type { App } from '../../src/server/app.ts'
import type { Route } from '../../src/server/http.ts'

export interface Finding {
  route: string
  request: { method: string; path: string; body: string | undefined; headers: Record<string, string> }
  status: number
  body: string
}

export interface FuzzReport {
  route: string
  runs: number
  statuses: Record<string, number>
  findings: Finding[]
  ms: number
}

const LEAK = /<html|<!doctype|\bat .+:\d+:\d+|node_modules|\/work\/|\/tmp\/|Bun v\d|verbose: true|Maximum call stack/i

const message = { role: 'user', content: 'fuzz' }
/** A valid body per route: mutations of these reach the validation and engine paths, not only the parser. */
const TEMPLATES: Record<string, unknown> = {
  '/queue/submit': { type: 'generate', payload: { model: 'llama3.2', prompt: 'fuzz' }, priority: 1, tenant: 'fuzz' },
  '/workflows': { name: 'fuzz-wf', steps: [{ id: 'a', type: 'generate', model: 'llama3.2', prompt: 'x' }] },
  '/workflows/:id/runs': {},
  '/api/chat': { model: 'llama3.2', messages: [message], stream: false },
  '/api/generate': { model: 'llama3.2', prompt: 'fuzz', stream: false },
  '/api/embed': { model: 'nomic-embed-text', input: ['fuzz'] },
  '/api/embeddings': { model: 'nomic-embed-text', prompt: 'fuzz' },
  '/api/show': { model: 'llama3.2' },
  '/api/pull': { model: 'fuzz-model', stream: false },
  '/api/create': { model: 'fuzz-model', from: 'llama3.2', stream: false },
  '/api/copy': { source: 'llama3.2', destination: 'fuzz-copy' },
  '/api/delete': { model: 'fuzz-missing' },
  '/v1/chat/completions': { model: 'llama3.2', messages: [message] },
  '/v1/completions': { model: 'llama3.2', prompt: 'fuzz' },
  '/v1/embeddings': { model: 'nomic-embed-text', input: 'fuzz' },
  '/v1/responses': { model: 'llama3.2', input: 'fuzz' },
}
const QUERY_KEYS = ['limit', 'state', 'cursor', 'tenant', 'timeout', 'types', 'last_event_id', 'model']
const FIELD_KEYS = [
  'model',
  'messages',
  'prompt',
  'input',
  'options',
  'format',
  'tools',
  'stream',
  'payload',
  'type',
  'tenant',
  'priority',
  'steps',
  'schedule',
  'name',
  'keep_alive',
  'max_tokens',
  'response_format',
  'stop',
  'idempotency_key',
]

const weird = fc.constantFrom('%ff', '%c0', '%zz', '%', '..', '%2e%2e', '\u0000', 'a'.repeat(300), '', 'null', '-1', '1e309')
const value = fc.oneof(fc.jsonValue({ maxDepth: 4 }), weird)

/** A body: valid template with fields replaced, garbage JSON, bare strings, nothing, or deep nesting. */
function bodyArb(path: string): fc.Arbitrary<string | undefined> {
  const template = TEMPLATES[path] ?? {}
  const mutated = fc
    .array(fc.tuple(fc.oneof(fc.constantFrom(...FIELD_KEYS), fc.string({ maxLength: 8 })), value, fc.boolean()), { maxLength: 4 })
    .map((edits) => {
      const out = structuredClone(template) as Record<string, unknown>
      for (const [key, v, inPayload] of edits) {
        const target = inPayload && typeof out.payload === 'object' && out.payload !== null ? (out.payload as Record<string, unknown>) : out
        target[key] = v
      }
      return JSON.stringify(out)
    })
  // Up to 10⁵ levels: what exhausted the stack before bodies were bounded in depth.
  const deep = fc.integer({ min: 1, max: 100_000 }).map((n) => `${'['.repeat(n)}${']'.repeat(n)}`)
  return fc.oneof(
    { arbitrary: mutated, weight: 5 },
    { arbitrary: fc.json({ maxDepth: 5 }), weight: 2 },
    { arbitrary: fc.string({ maxLength: 200 }), weight: 1 },
    { arbitrary: deep, weight: 1 },
    { arbitrary: fc.constant(undefined), weight: 1 },
  )
}

function requestArb(route: Route) {
  const hasBody = route.method === 'POST' || route.method === 'PUT'
  return fc.record({
    // Strings are sent percent-encoded; the weird ones raw, so malformed escapes (%ff, %c0, %) reach the router.
    params: fc.array(
      fc.oneof(
        fc.string({ maxLength: 40 }).map(encodeURIComponent),
        weird.map((w) => w.replace(/[/?#\u0000 ]/g, encodeURIComponent)),
      ),
      {
        minLength: 3,
        maxLength: 3,
      },
    ),
    query: fc.dictionary(
      fc.oneof(fc.constantFrom(...QUERY_KEYS), fc.string({ maxLength: 6 })),
      fc.oneof(fc.string({ maxLength: 30 }), weird, fc.integer().map(String)),
      {
        maxKeys: 3,
      },
    ),
    body: hasBody ? bodyArb(route.path) : fc.constant(undefined),
    headers: fc.record(
      {
        'content-type': fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', 'x/\u00ff'),
        'idempotency-key': fc.oneof(fc.string({ maxLength: 300 }), weird),
        'last-event-id': fc.oneof(fc.string({ maxLength: 20 }), fc.integer().map(String)),
      },
      { requiredKeys: [] },
    ),
  })
}

/** Header values a fetch Request accepts: printable latin1 without CR/LF. */
const headerSafe = (v: string) => v.replace(/[^\x20-\x7e]/g, '')

export async function fuzzRoute(app: App, base: string, route: Route, runs: number, seed: number, token?: string): Promise<FuzzReport> {
  const started = performance.now()
  const statuses: Record<string, number> = {}
  const findings: Finding[] = []
  await fc.assert(
    fc.asyncProperty(requestArb(route), async (r) => {
      let i = 0
      const path = route.path.replace(/:[a-z_]+/g, () => r.params[i++] ?? 'x')
      const query = new URLSearchParams(r.query).toString()
      const headers: Record<string, string> = {}
      for (const [k, v] of Object.entries(r.headers)) headers[k] = headerSafe(v as string)
      if (headers['idempotency-key'] === '') delete headers['idempotency-key']
      if (token) headers.authorization = `Bearer ${token}`
      const controller = new AbortController()
      // Long-polls and streams are cut short here: the fuzzer judges how a request starts, not how long it lasts.
      const timer = setTimeout(() => controller.abort(), 2000)
      const request = new Request(`${base}${path}${query ? `?${query}` : ''}`, {
        method: route.method,
        headers,
        body: r.body,
        signal: controller.signal,
      })
      const response = await app.fetch(request)
      const text = await readSome(response, controller)
      clearTimeout(timer)
      statuses[response.status] = (statuses[response.status] ?? 0) + 1
      if ((response.status >= 500 && response.status !== 503) || LEAK.test(text)) {
        findings.push({
          route: `${route.method} ${route.path}`,
          request: { method: route.method, path: `${path}?${query}`, body: r.body?.slice(0, 300), headers },
          status: response.status,
          body: text.slice(0, 300),
        })
      }
    }),
    { numRuns: runs, seed, endOnFailure: false },
  )
  return { route: `${route.method} ${route.path}`, runs, statuses, findings, ms: performance.now() - started }
}

/** The response text; an event stream is read only for its first chunk, then closed. */
async function readSome(response: Response, controller: AbortController): Promise<string> {
  if (!(response.headers.get('content-type') ?? '').includes('event-stream')) return response.text().catch(() => '')
  const reader = response.body?.getReader()
  const first = await reader?.read().catch(() => undefined)
  controller.abort()
  await reader?.cancel().catch(() => undefined)
  return first?.value ? new TextDecoder().decode(first.value) : ''
}
