/**
 * A browser on another site must not change anything in orch serve, with or without server.token: every
 * state-changing route is tried with the Origin values browsers send (`null` from sandboxed frames and
 * data: pages, foreign sites, a local page on another port), with Sec-Fetch-Site values, with the content
 * types a page can send without a preflight, and with DNS-rebinding Host values. Nothing may be created.
 * Requests without Origin (curl, SDKs), the README's `curl -d` among them, keep working.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { rawRequest } from '../helpers/raw-http.ts'
import { startOpenAndGuarded, type TestServe } from '../helpers/serve.ts'

const TOKEN = 'cross-site-token-0123456789'
let servers: Awaited<ReturnType<typeof startOpenAndGuarded>>
const open = () => servers.open
const guarded = () => servers.guarded

beforeAll(async () => {
  servers = await startOpenAndGuarded(TOKEN)
})
afterAll(() => servers.stop())

const task = JSON.stringify({ type: 'generate', payload: { model: 'llama3.2', prompt: 'from a web page' } })
const workflow = JSON.stringify({ name: 'csrf-wf', steps: [{ id: 'a', type: 'generate', model: 'llama3.2', prompt: 'x' }] })
const SIMPLE_TYPES = ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json']

/** What exists: tasks and workflows, read through the API. */
async function inventory(s: TestServe): Promise<{ tasks: number; workflows: number }> {
  const tasks = ((await (await s.fetch('/tasks?limit=1000')).json()) as { tasks: unknown[] }).tasks.length
  const workflows = ((await (await s.fetch('/workflows')).json()) as { workflows: unknown[] }).workflows.length
  return { tasks, workflows }
}

function bodyFor(path: string): string {
  if (path === '/queue/submit') return task
  if (path === '/workflows') return workflow
  if (path.startsWith('/api/'))
    return JSON.stringify({ model: 'llama3.2', prompt: 'x', messages: [{ role: 'user', content: 'x' }], input: 'x' })
  if (path.startsWith('/v1/'))
    return JSON.stringify({ model: 'llama3.2', prompt: 'x', messages: [{ role: 'user', content: 'x' }], input: 'x' })
  return '{}'
}

describe.each([
  ['default config', open],
  ['with server.token', guarded],
])('cross-site requests, %s', (_label, server) => {
  test('every state-changing route refuses foreign and null origins and cross-site fetches: 403, nothing created', async () => {
    const s = server()
    const port = new URL(s.url).port
    const before = await inventory(s)
    const origins = ['null', 'http://evil.example', `http://localhost:${Number(port) + 1}`, 'http://127.0.0.1.evil.example', 'file://']
    const sites = ['cross-site', 'same-site']
    const routes = s.server.app.routes.filter((r) => r.method !== 'GET')
    expect(routes.length).toBeGreaterThan(10)
    const attempts: Array<Promise<[string, number]>> = []
    for (const route of routes) {
      const path = route.path.replace(/:[a-z_]+/g, 'x')
      for (const type of SIMPLE_TYPES) {
        const send = (headers: Record<string, string>, what: string) =>
          attempts.push(
            s
              .fetch(path, {
                method: route.method,
                body: route.method === 'DELETE' ? undefined : bodyFor(path),
                headers: { 'content-type': type, ...headers },
              })
              .then(async (r): Promise<[string, number]> => {
                await r.text()
                return [`${route.method} ${path} ${type} ${what}`, r.status]
              }),
          )
        for (const origin of origins) send({ origin }, `Origin: ${origin}`)
        for (const site of sites) send({ 'sec-fetch-site': site }, `Sec-Fetch-Site: ${site}`)
      }
    }
    const results = await Promise.all(attempts)
    for (const [what, status] of results) expect(status, what).toBe(403)
    expect(await inventory(s)).toEqual(before)
  })

  test('DNS rebinding: a Host that is not this server is refused on every route, reads included', async () => {
    const s = server()
    const port = Number(new URL(s.url).port)
    const auth = s.config.server.token ? `Authorization: Bearer ${s.config.server.token}\r\n` : ''
    for (const host of ['evil.example', '127.0.0.1.nip.io', 'localhost.evil.example', `attacker.example:${port}`]) {
      for (const path of ['/tasks', '/workflows', '/stats', '/metrics', '/api/tags', '/v1/models']) {
        const r = await rawRequest(port, `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${auth}Connection: close\r\n\r\n`)
        expect(r.status, `${host} ${path}`).toBe(403)
        expect(JSON.parse(r.body).error.code ?? JSON.parse(r.body).error, `${host} ${path}`).toBeTruthy()
      }
    }
  })

  test("clients without Origin keep working: curl -d (form-encoded), JSON, and this server's own origin", async () => {
    const s = server()
    const before = await inventory(s)
    const curl = await s.fetch('/queue/submit', {
      method: 'POST',
      body: task,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    })
    expect(curl.status).toBe(202)
    const sdk = await s.fetch('/queue/submit', { method: 'POST', body: task, headers: { 'content-type': 'application/json' } })
    expect(sdk.status).toBe(202)
    // A page served by orch itself (the dashboard to come) sends its own origin and same-origin.
    const own = await s.fetch('/queue/submit', {
      method: 'POST',
      body: task,
      headers: { origin: s.url, 'sec-fetch-site': 'same-origin', 'content-type': 'application/json' },
    })
    expect(own.status).toBe(202)
    // A navigation typed into the address bar is `none`.
    const typed = await s.fetch('/queue/submit', { method: 'POST', body: task, headers: { 'sec-fetch-site': 'none' } })
    expect(typed.status).toBe(202)
    // The workflow body the refused attempts carried is valid: without an Origin it is created.
    const created = await s.fetch('/workflows', { method: 'POST', body: workflow.replace('csrf-wf', `csrf-wf-${before.workflows}`) })
    expect(created.status).toBeLessThan(300)
    expect(await inventory(s)).toEqual({ tasks: before.tasks + 4, workflows: before.workflows + 1 })
  })
})
