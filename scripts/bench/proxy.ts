/**
 * Throughput of orch serve at many clients, with wrk (a JS load generator saturates before orch does; where wrk
 * is missing, scripts/bench/load.ts stands in, and says so), in interleaved rounds against a baseline in the
 * same run; the figure is the ratio, with orch's CPU per call.
 *  - `--target chat` (default): proxied `/api/chat` (cache off) vs the Ollama test double straight.
 *  - `--target submit`: durable `POST /queue/submit` (fsync'd, tasks only queue: the backend is a closed port)
 *    vs a bare Bun.serve that reads the body and answers the same JSON. `--compare DIR` adds a second checkout of orch
 * (e.g. a `git worktree` of an older commit) to the same rounds, so a change is measured against its
 * baseline on the same machine in the same minutes.
 *
 *   bun scripts/bench/proxy.ts [--target chat|submit] [--seconds 5] [--clients 64] [--rounds 3] [--compare /tmp/orch-old]
 * Last line: one JSON object.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { loadTest, loadTool } from './load.ts'
import { spawnServer, stopAll } from './servers/spawn.ts'

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    seconds: { type: 'string', default: '5' },
    clients: { type: 'string', default: '64' },
    rounds: { type: 'string', default: '3' },
    compare: { type: 'string' },
    target: { type: 'string', default: 'chat' },
  },
})
const SUBMIT = values.target === 'submit'
const PATH = SUBMIT ? '/queue/submit' : '/api/chat'
const TOOL = loadTool()
if (TOOL !== 'wrk') console.error('wrk is not installed: load comes from scripts/bench/load.ts (fetch loops in a child process)')
const ROOT = resolve(import.meta.dir, '../..')
const home = mkdtempSync(join(tmpdir(), 'orch-bench-proxy-'))

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
  return (Number(fields[11]) + Number(fields[12])) / 100
}

const BODY = SUBMIT
  ? '{"type":"generate","model":"llama3.2","payload":{"model":"llama3.2","prompt":"hello"}}'
  : '{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":"hello there"}],"options":{"temperature":0.7}}'

async function load(url: string): Promise<{ perSecond: number; errors: number }> {
  const r = await loadTest({
    url: `${url}${PATH}`,
    method: 'POST',
    body: BODY,
    clients: Number(values.clients),
    seconds: Number(values.seconds),
  })
  return { perSecond: r.per_s, errors: r.errors }
}

async function orchAt(root: string, name: string, fakeUrl: string) {
  const cwd = mkdtempSync(join(home, `${name}-`))
  writeFileSync(
    join(cwd, 'orch.yaml'),
    [
      'backends:',
      `  - { name: fake, type: ollama, url: "${SUBMIT ? 'http://127.0.0.1:9' : fakeUrl}", concurrency: 256 }`,
      // The bench queues past the default bounds; an older checkout compared against has no such keys.
      readFileSync(join(root, 'src/config/schema.ts'), 'utf8').includes('max_queued_per_tenant')
        ? 'tasks: { synchronous: FULL, max_queued: 0, max_queued_per_tenant: 0 }'
        : 'tasks: { synchronous: FULL }',
      'runtime: { ollama: { concurrency: 256 } }',
      'infrastructure_system: { distributed_simulation: { agent_runner_concurrency: 256 }, llm_orchestration: { caching: { enabled: false } } }',
      'logging: { level: error }',
      '',
    ].join('\n'),
  )
  return spawnServer([join(root, 'commands/index.ts'), 'serve', '--port', '0', '--json', '--home', join(cwd, '.orch')], cwd, 'ignore')
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number

try {
  const baseline = SUBMIT ? 'scripts/bench/servers/echo.ts' : 'scripts/bench/servers/fake-ollama.ts'
  const fake = await spawnServer([join(ROOT, baseline)], ROOT, 'ignore')
  const sides: Array<{ name: string; url: string; pid: number }> = [{ name: 'direct', url: fake.url, pid: fake.pid }]
  sides.push({ name: 'orch', ...(await orchAt(ROOT, 'orch', fake.url)) })
  if (values.compare) sides.push({ name: 'compare', ...(await orchAt(resolve(values.compare), 'compare', fake.url)) })
  const results = new Map(sides.map((s) => [s.name, { perSecond: [] as number[], cpuUsPerCall: [] as number[], errors: 0 }]))
  for (const side of sides) await load(side.url) // warm-up: JIT, connections
  for (let round = 1; round <= Number(values.rounds); round++) {
    for (const side of sides) {
      const cpu = cpuSeconds(side.pid)
      const r = await load(side.url)
      const calls = r.perSecond * Number(values.seconds)
      const entry = results.get(side.name)
      entry?.perSecond.push(r.perSecond)
      entry?.cpuUsPerCall.push(((cpuSeconds(side.pid) - cpu) / calls) * 1e6)
      if (entry) entry.errors += r.errors
      console.error(`round ${round} ${side.name}: ${Math.round(r.perSecond)} req/s${r.errors ? `, ${r.errors} errors` : ''}`)
    }
  }
  const direct = median(results.get('direct')?.perSecond ?? [])
  const summary: Record<string, number | string> = { direct_per_s: Math.round(direct), clients: Number(values.clients), load_tool: TOOL }
  for (const side of sides.slice(1)) {
    const r = results.get(side.name)
    if (!r) continue
    summary[`${side.name}_per_s`] = Math.round(median(r.perSecond))
    summary[`${side.name}_vs_direct`] = Number((median(r.perSecond) / direct).toFixed(3))
    summary[`${side.name}_cpu_us_per_call`] = Math.round(median(r.cpuUsPerCall))
    summary[`${side.name}_errors`] = r.errors
  }
  console.log(JSON.stringify(summary))
} finally {
  await stopAll()
  rmSync(home, { recursive: true, force: true })
}
