/**
 * The planner for performance_monitoring.integrations.grafana_prometheus (enabled): does the Prometheus at
 * `endpoint` scrape this orch, and is its last scrape up? Prometheus labels the `up` series of a target with
 * `instance` = the target's `host:port` as its scrape config writes it, so this orch is any of the names it
 * answers to (its bind address, loopback names, host name, allowed_hosts, and the machine's addresses when
 * it binds all of them) with server.port.
 */
import { scrapeJobLine } from '../scale/manifests-monitoring.ts'
import { type Finding, fail, ok, warn } from './finding.ts'

const KEY = 'infrastructure_system.performance_monitoring.integrations.grafana_prometheus'
/** Where the fix's scrape job reads the token (server.token) from. */
export const TOKEN_FILE = '/etc/prometheus/orch-token'

export interface UpSeries {
  instance: string
  job: string
  /** The sample as the API writes it: "1" or "0". */
  value: string
}

export interface PrometheusFacts {
  endpoint: string
  /** The `host:port` names Prometheus may give this orch, lowercase; the first is the one the fix proposes. */
  instances: string[]
  /** Whether server.token is set (the scrape then needs it as bearer). */
  token: boolean
  reachable: boolean
  /** Why there is no answer: connection refused, timeout, an HTTP status, not the Prometheus API. */
  error?: string
  /** The `up` series Prometheus answered, every target's. */
  up?: UpSeries[]
}

const WILDCARDS = new Set(['0.0.0.0', '::', '[::]', ''])

/** `host:port` as a scrape target writes it: IPv6 addresses in brackets. */
export function targetOf(host: string, port: number): string {
  const bare = host.toLowerCase()
  return `${bare.includes(':') && !bare.startsWith('[') ? `[${bare}]` : bare}:${port}`
}

/** The names this orch serve answers to, as scrape targets; `addresses` only count when it binds every address. */
export function prometheusInstances(
  server: { host: string; port: number; allowed_hosts: string[] },
  hostname: string,
  addresses: string[],
): string[] {
  const wildcard = WILDCARDS.has(server.host)
  const hosts = [
    ...(wildcard ? [hostname] : [server.host]),
    ...(wildcard ? addresses : []),
    '127.0.0.1',
    'localhost',
    '::1',
    hostname,
    ...server.allowed_hosts,
  ]
  return [...new Set(hosts.filter((h) => h !== '').map((h) => targetOf(h, server.port)))]
}

export function checkPrometheus(facts: PrometheusFacts): Finding {
  const title = 'prometheus'
  if (!facts.reachable) {
    return fail(
      'prometheus',
      title,
      `${facts.endpoint} unreachable: ${facts.error ?? 'no answer'}`,
      `start Prometheus, or correct ${KEY}.endpoint (the URL of the Prometheus that scrapes orch)`,
    )
  }
  const names = new Set(facts.instances)
  const mine = (facts.up ?? []).filter((s) => names.has(s.instance.toLowerCase()))
  const upNow = mine.find((s) => s.value === '1')
  if (upNow) return ok('prometheus', title, `${facts.endpoint} scrapes this orch as ${upNow.instance} (job ${upNow.job}): up`)
  if (mine.length > 0) {
    const s = mine[0] as UpSeries
    return warn(
      'prometheus',
      title,
      `${facts.endpoint} scrapes this orch as ${s.instance} (job ${s.job}), but its last scrape failed (up 0)`,
      facts.token
        ? "start orch serve if it is not running; else make the job's authorization send server.token as bearer, and put the target's host in server.allowed_hosts"
        : "start orch serve if it is not running; else put the target's host in server.allowed_hosts",
    )
  }
  const job = scrapeJobLine({ targets: [facts.instances[0] ?? ''], ...(facts.token ? { tokenFile: TOKEN_FILE } : {}) })
  const targets = (facts.up ?? []).length
  return warn(
    'prometheus',
    title,
    `${facts.endpoint} answers, but none of its ${targets} target(s) is this orch (${facts.instances.slice(0, 3).join(', ')}${facts.instances.length > 3 ? ', …' : ''})`,
    `add this job under scrape_configs in prometheus.yml${facts.token ? ` (and the token in ${TOKEN_FILE})` : ''}, then reload Prometheus: ${job}`,
  )
}
