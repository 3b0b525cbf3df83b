/**
 * Which route answers a request: routes without parameters are looked up in a map before Hono's router,
 * and must be chosen exactly as Hono would choose them (registration order, HEAD, trailing slashes,
 * percent escapes), with the same error boundary.
 */
import { describe, expect, test } from 'bun:test'
import { defaultConfig } from '../../src/config/schema.ts'
import type { RequestRecord } from '../../src/metrics/engine-metrics.ts'
import { createApp } from '../../src/server/app.ts'
import { type AppDeps, httpError, json, type Route } from '../../src/server/http.ts'

const deps = { config: defaultConfig() } as AppDeps

function app(routes: Route[]) {
  const records: RequestRecord[] = []
  const made = createApp(deps, routes, { onRequest: (r) => records.push(r) })
  const call = (method: string, path: string) => made.fetch(new Request(`http://127.0.0.1${path}`, { method }))
  return { call, records }
}

function answer(name: string): Route['handler'] {
  return (ctx) => json({ name, params: ctx.params })
}

describe('routing', () => {
  test('of two routes for one method and path the first answers, as with Hono; parameters are decoded as Hono does', async () => {
    const { call, records } = app([
      { method: 'GET', path: '/things/:id', handler: answer('by id') },
      { method: 'GET', path: '/things/:id/count', handler: answer('count') },
      { method: 'GET', path: '/other', handler: answer('other') },
      { method: 'GET', path: '/other', handler: answer('second other') },
    ])
    expect(await (await call('GET', '/things/7')).json()).toEqual({ name: 'by id', params: { id: '7' } })
    expect(await (await call('GET', '/things/a%20b/count')).json()).toEqual({ name: 'count', params: { id: 'a b' } })
    expect(await (await call('GET', '/other')).json()).toEqual({ name: 'other', params: {} })
    expect(records.map((r) => r.route)).toEqual(['/things/:id', '/things/:id/count', '/other'])
  })

  test('HEAD, a trailing slash, a percent escape and a query string go where Hono sends them', async () => {
    const { call, records } = app([
      { method: 'GET', path: '/plain', handler: answer('plain') },
      { method: 'POST', path: '/plain', handler: answer('posted') },
    ])
    const head = await call('HEAD', '/plain')
    expect(head.status).toBe(200)
    expect(await head.text()).toBe('')
    expect((await call('GET', '/plain/')).status).not.toBe(200)
    expect(await (await call('GET', '/pl%61in')).json()).toMatchObject({ name: 'plain' })
    expect(await (await call('POST', '/plain?x=1#y')).json()).toMatchObject({ name: 'posted' })
    expect((await call('PUT', '/plain')).status).toBe(405)
    expect(records.map((r) => `${r.method} ${r.route} ${r.status}`)).toEqual([
      'HEAD /plain 200',
      'GET unmatched 405',
      'GET /plain 200',
      'POST /plain 200',
      'PUT unmatched 405',
    ])
  })

  test('what a route throws is an error in its dialect, counted under its pattern', async () => {
    const { call, records } = app([
      {
        method: 'POST',
        path: '/api/boom',
        handler: () => {
          throw httpError(400, 'model: is required', 'E_VALIDATION')
        },
      },
      {
        method: 'POST',
        path: '/v1/boom',
        handler: async () => {
          throw new Error('secret internals')
        },
      },
    ])
    const ollama = await call('POST', '/api/boom')
    expect(ollama.status).toBe(400)
    expect(await ollama.json()).toEqual({ error: 'model: is required' })
    const openai = await call('POST', '/v1/boom')
    expect(openai.status).toBe(500)
    const body = (await openai.json()) as { error: { message: string } }
    expect(body.error.message).not.toContain('secret')
    expect(records.map((r) => `${r.route} ${r.status}`)).toEqual(['/api/boom 400', '/v1/boom 500'])
  })
})
