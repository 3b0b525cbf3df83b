/**
 * fast-check over every route's body, query, path parameters and headers (test/helpers/fuzz-routes.ts):
 * no 5xx, nothing leaked, the server alive after each route and its memory bounded. CI runs
 * ORCH_FUZZ_RUNS cases per route (10⁴ by default); scripts/chaos/fuzz.ts runs 10⁵ and more.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { fuzzRoute } from '../helpers/fuzz-routes.ts'
import { startTestServe, type TestServe } from '../helpers/serve.ts'

const RUNS = Number(process.env.ORCH_FUZZ_RUNS ?? 10_000)
const SEED = Number(process.env.ORCH_FUZZ_SEED ?? 20261201)
const TOKEN = 'fuzz-token-0123456789abcdef'
let s: TestServe

beforeAll(async () => {
  s = await startTestServe({ tweak: (c) => (c.server.token = TOKEN) })
})
afterAll(() => s.stop())

test(`${RUNS} fuzzed requests per route: no 5xx, no leak, server alive, memory bounded`, async () => {
  const rssBefore = process.memoryUsage().rss
  const reports = []
  for (const route of s.server.app.routes) {
    const report = await fuzzRoute(s.server.app, s.url, route, RUNS, SEED, TOKEN)
    reports.push(report)
    expect(report.findings, report.route).toEqual([])
    expect((await s.fetch('/health')).status).toBe(200)
  }
  const total = reports.reduce((n, r) => n + r.runs, 0)
  expect(total).toBe(RUNS * s.server.app.routes.length)
  // Every route saw both refusals and, for most, accepted requests: the fuzzer reached past the parser.
  const accepted = reports.filter((r) => Object.keys(r.statuses).some((code) => code.startsWith('2')))
  expect(accepted.length).toBeGreaterThan(s.server.app.routes.length / 2)
  const grownMb = (process.memoryUsage().rss - rssBefore) / 2 ** 20
  expect(grownMb).toBeLessThan(400)
  console.log(reports.map((r) => `${r.route}: ${r.runs} in ${Math.round(r.ms)} ms ${JSON.stringify(r.statuses)}`).join('\n'))
}, 600_000)
