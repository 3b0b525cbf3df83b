/**
 * The fuzz battery at large counts: fast-check over every route of a real orch serve (in process, in front
 * of an Ollama test double), as test/chaos/fuzz.test.ts does at CI counts. A finding is a 5xx, a leaked
 * stack or runtime message, or a request that does not end. Prints a line per route, then one JSON line;
 * exits 1 on any finding.
 *
 *   bun scripts/chaos/fuzz.ts [--runs 100000] [--seed N] [--route /api/chat]
 */
import { parseArgs } from 'node:util'
import { fuzzRoute } from '../../test/helpers/fuzz-routes.ts'
import { startTestServe } from '../../test/helpers/serve.ts'

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    runs: { type: 'string', default: '100000' },
    seed: { type: 'string', default: String(Date.now() % 2 ** 31) },
    route: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
})
if (values.help) {
  console.log('usage: bun scripts/chaos/fuzz.ts [--runs 100000] [--seed N] [--route PATH]')
  process.exit(0)
}
const runs = Number(values.runs)
const seed = Number(values.seed)
const token = 'fuzz-script-token-0123456789'
const s = await startTestServe({ tweak: (c) => (c.server.token = token) })
const rssBefore = process.memoryUsage().rss
let findings = 0
let total = 0
try {
  for (const route of s.server.app.routes) {
    if (values.route && route.path !== values.route) continue
    const report = await fuzzRoute(s.server.app, s.url, route, runs, seed, token)
    total += report.runs
    findings += report.findings.length
    console.error(`${report.route}: ${report.runs} in ${(report.ms / 1000).toFixed(1)} s ${JSON.stringify(report.statuses)}`)
    for (const f of report.findings.slice(0, 5)) console.error(`  finding: ${JSON.stringify(f)}`)
    const health = await s.fetch('/health')
    if (health.status !== 200) throw new Error(`orch serve stopped answering /health after ${report.route}`)
  }
} finally {
  await s.stop()
}
const rssAfter = process.memoryUsage().rss
// The JS heap after a full collection tells a leak (grows with the count) from caches and allocator slack.
Bun.gc(true)
const heap = process.memoryUsage().heapUsed
const mb = (n: number) => Math.round(n / 2 ** 20)
console.log(
  JSON.stringify({
    seed,
    runs_per_route: runs,
    requests: total,
    findings,
    rss_mb_before: mb(rssBefore),
    rss_mb_after: mb(rssAfter),
    heap_mb_after_gc: mb(heap),
  }),
)
process.exit(findings > 0 ? 1 : 0)
