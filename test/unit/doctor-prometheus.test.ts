/** The doctor's Prometheus check: the planner (src/doctor/checks-prometheus.ts), facts in, one finding out; and its gatherer. */
import { describe, expect, test } from 'bun:test'
import YAML from 'yaml'
import { defaultConfig } from '../../src/config/schema.ts'
import { checkPrometheus, type PrometheusFacts, planDoctor, prometheusInstances, targetOf } from '../../src/doctor/checks.ts'
import { gatherPrometheus } from '../../src/doctor/run.ts'

const facts = (over: Partial<PrometheusFacts> = {}): PrometheusFacts => ({
  endpoint: 'http://prom:9090',
  instances: ['127.0.0.1:9097', 'localhost:9097', '[::1]:9097', 'box:9097'],
  token: false,
  reachable: true,
  up: [],
  ...over,
})

describe('the names Prometheus may give this orch', () => {
  test('bound to loopback: the bind address first, then loopback names, the host name and allowed_hosts, with server.port', () => {
    const server = { host: '127.0.0.1', port: 9097, allowed_hosts: ['Orch.Example'] }
    expect(prometheusInstances(server, 'box', ['10.0.0.5'])).toEqual([
      '127.0.0.1:9097',
      'localhost:9097',
      '[::1]:9097',
      'box:9097',
      'orch.example:9097',
    ])
  })

  test("bound to every address: the host name first, and the machine's addresses (IPv6 in brackets)", () => {
    const server = { host: '0.0.0.0', port: 8000, allowed_hosts: [] }
    expect(prometheusInstances(server, 'box', ['10.0.0.5', 'fe80::1'])).toEqual([
      'box:8000',
      '10.0.0.5:8000',
      '[fe80::1]:8000',
      '127.0.0.1:8000',
      'localhost:8000',
      '[::1]:8000',
    ])
    expect(targetOf('[::1]', 1)).toBe('[::1]:1')
  })
})

describe('checkPrometheus', () => {
  test('up 1 for one of its names: ok, naming the target and job', () => {
    const up = [
      { instance: 'other:9100', job: 'node', value: '1' },
      { instance: 'LOCALHOST:9097', job: 'orch', value: '1' },
    ]
    expect(checkPrometheus(facts({ up }))).toEqual({
      id: 'prometheus',
      status: 'ok',
      title: 'prometheus',
      detail: 'http://prom:9090 scrapes this orch as LOCALHOST:9097 (job orch): up',
    })
  })

  test('scraped but up 0: a warning saying the last scrape failed, the token named when there is one', () => {
    const finding = checkPrometheus(facts({ token: true, up: [{ instance: '127.0.0.1:9097', job: 'orch', value: '0' }] }))
    expect(finding.status).toBe('warning')
    expect(finding.detail).toBe('http://prom:9090 scrapes this orch as 127.0.0.1:9097 (job orch), but its last scrape failed (up 0)')
    expect(finding.fix).toContain('server.token as bearer')
  })

  test('answering without scraping this orch (another port is another orch): a warning whose fix is the scrape job', () => {
    const finding = checkPrometheus(facts({ up: [{ instance: '127.0.0.1:9098', job: 'orch', value: '1' }] }))
    expect(finding.status).toBe('warning')
    expect(finding.detail).toBe(
      'http://prom:9090 answers, but none of its 1 target(s) is this orch (127.0.0.1:9097, localhost:9097, [::1]:9097, …)',
    )
    const job = YAML.parse(String(finding.fix?.split('then reload Prometheus: ')[1]))
    expect(job).toEqual({
      job_name: 'orch',
      scrape_interval: '15s',
      metrics_path: '/metrics',
      honor_labels: true,
      static_configs: [{ targets: ['127.0.0.1:9097'] }],
    })
  })

  test('with server.token the proposed job sends it from a file as bearer', () => {
    const finding = checkPrometheus(facts({ token: true }))
    expect(finding.fix).toContain('(and the token in /etc/prometheus/orch-token)')
    const job = YAML.parse(String(finding.fix?.split('then reload Prometheus: ')[1]))
    expect(job.authorization).toEqual({ type: 'Bearer', credentials_file: '/etc/prometheus/orch-token' })
  })

  test('unreachable: an error that fails the doctor, with the key to correct', () => {
    const finding = checkPrometheus(
      facts({ reachable: false, up: undefined, error: 'Unable to connect. Is the computer able to access the url?' }),
    )
    expect(finding).toMatchObject({
      status: 'error',
      detail: 'http://prom:9090 unreachable: Unable to connect. Is the computer able to access the url?',
    })
    expect(finding.fix).toContain('infrastructure_system.performance_monitoring.integrations.grafana_prometheus.endpoint')
  })

  test('planDoctor reports it only when gathered (grafana_prometheus.enabled), and an unreachable one fails the run', () => {
    const base = {
      bunVersion: Bun.version,
      config: { files: [], issues: [], warnings: [] },
      home: { path: '/tmp/h', writable: true, exists: true },
      disk: { path: '/tmp', freeBytes: 100e9 },
      openFiles: 65536,
      gpus: { detection: { available: false as const, reason: 'nvidia-smi not found' }, pools: [] },
    }
    expect(planDoctor(base).findings.map((f) => f.id)).not.toContain('prometheus')
    const report = planDoctor({ ...base, prometheus: facts({ reachable: false, error: 'ECONNREFUSED' }) })
    expect(report.findings.filter((f) => f.id === 'prometheus').map((f) => f.status)).toEqual(['error'])
    expect(report.ok).toBe(false)
    expect(defaultConfig().infrastructure_system.performance_monitoring.integrations.grafana_prometheus.enabled).toBe(false)
  })
})

describe('gatherPrometheus', () => {
  test('a server that is not Prometheus (no query API) counts as unreachable, saying what it answered', async () => {
    const other = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response('404 page not found', { status: 404 }) })
    try {
      const config = defaultConfig()
      config.infrastructure_system.performance_monitoring.integrations.grafana_prometheus = { enabled: true, endpoint: `${other.url}` }
      const facts = await gatherPrometheus(config, 2000)
      expect(facts).toMatchObject({ reachable: false, error: 'HTTP 404 from /api/v1/query: not the Prometheus API', token: false })
      expect(facts.endpoint).toBe(`http://127.0.0.1:${other.port}`)
      expect(facts.instances[0]).toBe(`127.0.0.1:${config.server.port}`)
      expect(checkPrometheus(facts).status).toBe('error')
    } finally {
      other.stop(true)
    }
  })
})
