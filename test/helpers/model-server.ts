/**
 * A tiny model server, run as a real `command` pool worker in tests:
 *   bun test/helpers/model-server.ts --port N [--model NAME] [--crash-on-start] [--hang-after MS]
 *     [--die-after-requests N] [--delay-ms MS] [--mark FILE]
 * Serves /health, Ollama's /api/version, /api/tags, /api/ps, /api/chat (one answer or an NDJSON stream that
 * echoes the last message) and /api/embed. --hang-after: after MS ms nothing is answered any more (the
 * process stays up); --die-after-requests: exit(3) after N model requests.
 */
import { appendFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    port: { type: 'string' },
    model: { type: 'string', default: 'test-model' },
    'crash-on-start': { type: 'boolean', default: false },
    'hang-after': { type: 'string' },
    'die-after-requests': { type: 'string' },
    'delay-ms': { type: 'string', default: '0' },
    mark: { type: 'string' },
  },
})

// --mark FILE: one line per start, so a test can count spawns from outside the supervisor.
if (values.mark) appendFileSync(values.mark, `${process.pid}\n`)
if (values['crash-on-start']) process.exit(3)

const startedAt = Date.now()
const hangAfter = values['hang-after'] ? Number(values['hang-after']) : Number.POSITIVE_INFINITY
const dieAfter = values['die-after-requests'] ? Number(values['die-after-requests']) : Number.POSITIVE_INFINITY
const delayMs = Number(values['delay-ms'])
const model = values.model
let requests = 0

const json = (body: unknown) => Response.json(body)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function countRequest(): void {
  requests++
  if (requests >= dieAfter) setTimeout(() => process.exit(3), 10)
}

async function chat(req: Request): Promise<Response> {
  const body = (await req.json()) as { model?: string; stream?: boolean; messages?: Array<{ content?: string }> }
  countRequest()
  if (delayMs > 0) await sleep(delayMs)
  const text = `echo: ${body.messages?.at(-1)?.content ?? ''}`
  const base = { model: body.model ?? model, created_at: new Date().toISOString() }
  const final = { ...base, message: { role: 'assistant', content: '' }, done: true, done_reason: 'stop', eval_count: 2 }
  if (body.stream === false) return json({ ...final, message: { role: 'assistant', content: text } })
  const lines = text
    .split(' ')
    .map((word, i) => JSON.stringify({ ...base, message: { role: 'assistant', content: i ? ` ${word}` : word }, done: false }))
  lines.push(JSON.stringify(final))
  return new Response(`${lines.join('\n')}\n`, { headers: { 'content-type': 'application/x-ndjson' } })
}

async function embed(req: Request): Promise<Response> {
  const body = (await req.json()) as { input?: string | string[] }
  countRequest()
  const inputs = Array.isArray(body.input) ? body.input : [body.input ?? '']
  return json({ model, embeddings: inputs.map((s) => [s.length, 1, 0]) })
}

const server = Bun.serve({
  hostname: '127.0.0.1',
  port: Number(values.port ?? 0),
  idleTimeout: 0,
  async fetch(req) {
    // Hung: accept the connection, never answer.
    if (Date.now() - startedAt >= hangAfter) return new Promise<Response>(() => {})
    const path = new URL(req.url).pathname
    if (path === '/health') return json({ status: 'ok' })
    if (path === '/api/version') return json({ version: '0.0.0-test' })
    if (path === '/api/tags') return json({ models: [{ name: model, model, size: 1, digest: 'x', modified_at: new Date().toISOString() }] })
    if (path === '/api/ps') return json({ models: [] })
    if (path === '/api/chat' && req.method === 'POST') return chat(req)
    if (path === '/api/embed' && req.method === 'POST') return embed(req)
    return new Response('not found', { status: 404 })
  },
})

console.log(`model-server pid ${process.pid} listening on 127.0.0.1:${server.port}`)
