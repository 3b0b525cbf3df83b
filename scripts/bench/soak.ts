/**
 * Memory over time: orch serve under steady mixed traffic for `--minutes`, its RSS sampled every
 * `--sample-seconds`. The traffic is what a busy server sees, at a rate one core keeps up with: durable
 * submissions that run to done against the Ollama test double (the event bus, the runner, the group commit,
 * the done tasks piling up in state.db), proxied /api/chat calls, and the reads of a dashboard (/stats,
 * /metrics, /tasks?state=running, /health). Baseline: the same server's RSS once warmed up (after the
 * first `--warmup-minutes`). Figures: RSS at the end / after warm-up, the largest sample, and the slope
 * of a least-squares line through the samples after warm-up, in MiB per hour.
 *
 *   bun scripts/bench/soak.ts [--minutes 60] [--warmup-minutes 5] [--rate 200] [--sample-seconds 30]
 * Last line: one JSON object.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { spawnServer, stopAll } from './servers/spawn.ts'

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    minutes: { type: 'string', default: '60' },
    'warmup-minutes': { type: 'string', default: '5' },
    rate: { type: 'string', default: '200' },
    'sample-seconds': { type: 'string', default: '30' },
  },
})
const MINUTES = Number(values.minutes)
const WARMUP = Number(values['warmup-minutes'])
const RATE = Number(values.rate)
const SAMPLE_S = Number(values['sample-seconds'])
for (const [flag, n] of Object.entries({ minutes: MINUTES, 'warmup-minutes': WARMUP, rate: RATE, 'sample-seconds': SAMPLE_S })) {
  if (!Number.isFinite(n) || n < 0 || (flag !== 'warmup-minutes' && n === 0)) {
    console.error(`--${flag}: expected a positive number, got "${values[flag as keyof typeof values]}"`)
    process.exit(2)
  }
}
if (WARMUP >= MINUTES) {
  console.error(`--warmup-minutes (${WARMUP}) must be shorter than --minutes (${MINUTES})`)
  process.exit(2)
}
const ROOT = resolve(import.meta.dir, '../..')
const home = mkdtempSync(join(tmpdir(), 'orch-bench-soak-'))

function rssMb(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1])
  return Math.round((kb / 1024) * 10) / 10
}

/** Least-squares slope of (t in hours, y) pairs. */
function slope(points: Array<[number, number]>): number {
  const n = points.length
  const mx = points.reduce((s, [x]) => s + x, 0) / n
  const my = points.reduce((s, [, y]) => s + y, 0) / n
  const sxy = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0)
  const sxx = points.reduce((s, [x]) => s + (x - mx) ** 2, 0)
  return sxx > 0 ? sxy / sxx : 0
}

try {
  const fake = await spawnServer([join(ROOT, 'scripts/bench/servers/fake-ollama.ts')], ROOT, 'ignore')
  writeFileSync(
    join(home, 'orch.yaml'),
    [
      'backends:',
      `  - { name: fake, type: ollama, url: "${fake.url}", concurrency: 16 }`,
      'tasks: { synchronous: FULL, max_queued: 0, max_queued_per_tenant: 0 }',
      'infrastructure_system: { llm_orchestration: { caching: { enabled: false } } }',
      'logging: { level: error }',
      '',
    ].join('\n'),
  )
  const orch = await spawnServer(
    [join(ROOT, 'commands/index.ts'), 'serve', '--port', '0', '--json', '--home', join(home, '.orch')],
    home,
    'ignore',
  )
  const started = performance.now()
  const until = started + MINUTES * 60_000
  const counts = { submits: 0, chats: 0, reads: 0, errors: 0 }
  const call = async (path: string, init?: RequestInit) => {
    try {
      const response = await fetch(`${orch.url}${path}`, init)
      await response.arrayBuffer()
      if (response.status >= 400) counts.errors++
    } catch {
      counts.errors++
    }
  }
  const post = (body: unknown) => ({ method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } })
  /** `perSecond` calls a second, in ticks of 100 ms, until the end. */
  const paced = async (perSecond: number, fire: (i: number) => Promise<void>) => {
    for (let i = 0; performance.now() < until; ) {
      const tick = performance.now()
      const n = Math.max(1, Math.round(perSecond / 10))
      await Promise.all(Array.from({ length: n }, () => fire(i++)))
      await Bun.sleep(Math.max(0, 100 - (performance.now() - tick)))
    }
  }
  const samples: Array<[number, number]> = []
  const sample = () => {
    const hours = (performance.now() - started) / 3_600_000
    samples.push([hours, rssMb(orch.pid)])
    console.error(`${(hours * 60).toFixed(1).padStart(5)} min  RSS ${samples.at(-1)?.[1]} MiB  ${JSON.stringify(counts)}`)
  }
  sample()
  const sampler = setInterval(sample, SAMPLE_S * 1000)
  await Promise.all([
    paced(RATE, async (i) => {
      counts.submits++
      await call(
        '/queue/submit',
        post({ type: 'generate', model: 'llama3.2', tenant: `t${i % 8}`, payload: { model: 'llama3.2', prompt: `q${i}` } }),
      )
    }),
    paced(RATE / 2, async (i) => {
      counts.chats++
      await call('/api/chat', post({ model: 'llama3.2', stream: i % 2 === 0, messages: [{ role: 'user', content: `c${i}` }] }))
    }),
    paced(4, async (i) => {
      counts.reads++
      await call(['/stats', '/metrics', '/tasks?state=running', '/health'][i % 4] as string)
    }),
  ])
  clearInterval(sampler)
  sample()
  const after = samples.filter(([h]) => h * 60 >= WARMUP)
  const warm = after[0]?.[1] ?? Number.NaN
  const last = samples.at(-1)?.[1] ?? Number.NaN
  const stats = (await (await fetch(`${orch.url}/stats`)).json()) as { tasks: Record<string, number> }
  const figures = {
    minutes: MINUTES,
    rate_per_s: RATE,
    ...counts,
    tasks: stats.tasks,
    rss_mb_warm: warm,
    rss_mb_max: Math.max(...after.map(([, y]) => y)),
    rss_mb_last: last,
    rss_last_vs_warm: Number((last / warm).toFixed(3)),
    rss_slope_mb_per_hour: Number(slope(after).toFixed(2)),
    rss_mb_samples: samples.map(([, y]) => y),
  }
  console.log(
    `RSS after warm-up ${warm} MiB, at the end ${last} MiB (×${figures.rss_last_vs_warm}), max ${figures.rss_mb_max} MiB, slope ${figures.rss_slope_mb_per_hour} MiB/h; ${counts.submits} submits, ${counts.chats} chats, ${counts.errors} errors`,
  )
  console.log(JSON.stringify(figures))
} finally {
  await stopAll()
  rmSync(home, { recursive: true, force: true })
}
