/** `orch status`: is an `orch serve` running for this state directory (in the foreground or the background); its pid, URL, uptime and, live, its queue and backends. */

import { networkReason } from '../src/backends/timeouts.ts'
import { transportCause } from '../src/client/client.ts'
import { formatAge } from '../src/core/age.ts'
import { serveLogPath } from '../src/core/home.ts'
import { daemonState, modeText } from '../src/daemon/pidfile.ts'
import type { Limits } from '../src/scheduler/limits.ts'
import { defineOrchCommand, globalArgs, printJson, printText } from './_args.ts'
import { clientAt, type ServeClient } from './_client.ts'
import { loadConfig } from './_config.ts'
import { formatTable } from './_table.ts'

interface Backend {
  name: string
  url: string
  healthy: boolean | null
}

type BackendLimit = Limits['backends'][number]

interface Live {
  answering: boolean
  ready?: boolean
  backends?: Backend[]
  stats?: Record<string, unknown>
  /** Why a figure is missing (the server did not answer, or refused the token). */
  error?: string
}

const FETCH_TIMEOUT_MS = 3000

/** /ready (public) and /stats (token from config); a server that does not answer is still reported as running. */
async function live(client: ServeClient): Promise<Live> {
  const options = { timeoutMs: FETCH_TIMEOUT_MS }
  try {
    const [ready, stats] = await Promise.all([client.ready(options), client.stats(options)])
    const out: Live = { answering: true, ready: ready.body?.ready === true, backends: ready.body?.backends ?? [] }
    if (stats.status === 200) out.stats = stats.body
    else if (stats.status === 401) out.error = '/stats refused the token: set server.token (or ORCH_SERVER_TOKEN) as the server has it'
    else out.error = `/stats answered ${stats.status}`
    return out
  } catch (error) {
    return { answering: false, error: `no answer from ${client.url}: ${networkReason(transportCause(error))}` }
  }
}

/** Key and value lines; a row without a value is left out. */
function table(rows: Array<[string, string | number | undefined]>): string {
  return formatTable(rows.flatMap(([key, value]) => (value === undefined ? [] : [[key, String(value)]])))
}

/** A backend's calls in flight of its concurrency, and where that limit comes from; '' when /stats did not say. */
function slotText(limit: BackendLimit | undefined): string {
  return limit ? `  ${limit.inflight}/${limit.concurrency} in flight (concurrency from ${limit.source})` : ''
}

function runnerText(limits: Limits | undefined): string | undefined {
  const runner = limits?.task_runner
  if (!runner) return undefined
  return runner.concurrency === null
    ? `no cap of its own (${runner.source})`
    : `${runner.concurrency} tasks at once (agent_runner_concurrency)`
}

function liveRows(l: Live): Array<[string, string | number | undefined]> {
  if (!l.answering) return [['answering', `no (${l.error})`]]
  const backends = l.backends ?? []
  const healthy = backends.filter((b) => b.healthy === true).length
  const s = (l.stats ?? {}) as Record<string, any>
  const limits = s.limits as Limits | undefined
  const limitOf = new Map((limits?.backends ?? []).map((b) => [b.name, b]))
  const tasks = s.tasks ? Object.entries(s.tasks as Record<string, number>).map(([k, v]) => `${k} ${v}`) : []
  return [
    ['ready', `${l.ready ? 'yes' : 'no'} (${healthy} of ${backends.length} backends healthy)`],
    ...backends.map((b, i): [string, string] => [
      i === 0 ? 'backends' : '',
      `${b.name} ${b.healthy ? 'ok' : 'down'}  ${b.url}${slotText(limitOf.get(b.name))}`,
    ]),
    ['requests', s.requests],
    ['queued', s.queued],
    ['inflight', s.inflight],
    ['errors', s.errors],
    // Slots of the usable backends: what proxied calls and durable tasks share.
    ['slots', s.slots === undefined ? undefined : `${s.slots} (busy ${s.slots_busy})`],
    ['task runner', runnerText(limits)],
    ['tasks', tasks.length > 0 ? tasks.join(', ') : undefined],
    ['cache', s.cache ? `hits ${s.cache.hits}, misses ${s.cache.misses}` : undefined],
    ...clusterRows(s.cluster as Cluster | undefined),
    ['note', l.error],
  ]
}

interface Cluster {
  bus: string
  runners: Array<{ id: string; role: string; running: number; concurrency: number | null; alive: boolean; last_seen: number }>
}

/** In a cluster: every task runner (orch worker or orch serve) as its heartbeat says, one row each. */
function clusterRows(cluster: Cluster | undefined): Array<[string, string]> {
  if (!cluster) return []
  const alive = cluster.runners.filter((r) => r.alive).length
  const rows: Array<[string, string]> = [['cluster', `Redis; ${alive} of ${cluster.runners.length} task runners alive`]]
  for (const r of cluster.runners) {
    const cap = r.concurrency === null ? '' : `/${r.concurrency}`
    const seen = r.alive ? 'alive' : `gone (last seen ${formatAge((Date.now() - r.last_seen) / 1000)} ago)`
    rows.push(['', `${r.role} ${r.id}  running ${r.running}${cap}  ${seen}`])
  }
  return rows
}

export default defineOrchCommand({
  meta: {
    name: 'status',
    description:
      'Is orch serve running for this state directory (foreground or --detach)? Its pid, URL, uptime, limits, queue and backends',
  },
  args: { ...globalArgs },
  examples: ['orch status', 'orch status --json | jq .stats.queued', 'orch status --home /srv/orch'],
  async run({ args }) {
    const { config, home } = loadConfig(args)
    const state = daemonState(home)
    const logFile = serveLogPath(home)
    if (!state.running) {
      const stale = state.stale ? { stale_pid_removed: state.stale.pid } : {}
      if (args.json) printJson({ running: false, home, pid_file: state.pidFile, log_file: logFile, ...stale })
      else {
        const note = state.stale ? ` (removed a stale pid file: pid ${state.stale.pid} is gone)` : ''
        printText(
          `orch serve is not running for ${home}${note}\nstart it with: orch serve (in this terminal) or orch serve --detach (in the background)`,
        )
      }
      return 0
    }
    const { info } = state
    const started = Date.parse(info.started_at)
    const uptime = Number.isNaN(started) ? undefined : Math.round((Date.now() - started) / 1000)
    const figures = await live(clientAt(info.url, config.server))
    if (args.json) {
      printJson({
        running: true,
        pid: info.pid,
        url: info.url,
        started_at: info.started_at,
        uptime_s: uptime,
        version: info.version,
        home,
        pid_file: state.pidFile,
        log_file: info.mode === 'foreground' ? null : logFile,
        argv: info.argv,
        mode: info.mode,
        also_running: state.others.map((o) => ({ pid: o.info.pid, url: o.info.url, mode: o.info.mode })),
        ...figures,
      })
      return 0
    }
    printText(
      table([
        ['orch serve', `running ${modeText(info.mode)}`],
        ...state.others.map((o): [string, string] => ['also', `pid ${o.info.pid} ${o.info.url} (${modeText(o.info.mode)})`]),
        ['pid', info.pid],
        ['url', info.url],
        ['uptime', uptime === undefined ? undefined : formatAge(uptime)],
        ['version', info.version],
        ['home', home],
        // A foreground serve logs to its terminal; serve.log is the background one's.
        ['log', info.mode === 'foreground' ? 'its terminal (stderr)' : logFile],
        ...liveRows(figures),
      ]),
    )
    return 0
  },
})
