/**
 * orch doctor's Prometheus check against a real Prometheus (Debian's `prometheus` package; .ci/run installs
 * it) scraping a real orch serve with the scrape job `orch scale manifests` writes (token as bearer): up,
 * then a Prometheus that answers without scraping this orch, then a failed scrape, then no Prometheus. While
 * it scrapes, every expression of the Grafana dashboard is evaluated there too.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import YAML from 'yaml'
import type { OrchConfig } from '../../src/config/schema.ts'
import { checkPrometheus } from '../../src/doctor/checks.ts'
import { gatherPrometheus } from '../../src/doctor/run.ts'
import { parseManifestFlags, renderManifests } from '../../src/scale/manifests.ts'
import { ROOT } from '../helpers/cli.ts'
import { backend, closedPort, project, serverPort } from '../helpers/doctor-project.ts'
import { type FakeServer, startFakeOllama } from '../helpers/fake-ollama.ts'
import { expressionsOf, interpolate } from '../helpers/grafana-checks.ts'
import { type PrometheusServer, promtoolCheckConfig, startPrometheus } from '../helpers/prometheus-server.ts'
import { startTestServe, type TestServe } from '../helpers/serve.ts'

const TOKEN = 'a-token-for-prometheus-0123456789'
let t: TestServe | undefined
let prom: PrometheusServer | undefined
let port = 0
let serveConfig: OrchConfig | undefined
let ollama: FakeServer | undefined

/** orch.yaml of a doctor project: a backend that answers, monitoring on, this endpoint. */
const monitoredYaml = (endpoint: string) =>
  [
    serverPort(),
    'backends:',
    backend('local', ollama?.url ?? ''),
    'infrastructure_system:',
    '  performance_monitoring:',
    '    integrations:',
    '      grafana_prometheus:',
    '        enabled: true',
    `        endpoint: ${endpoint}`,
    '',
  ].join('\n')

/** The serve's config as `orch doctor` on its machine reads it: monitoring on, its real port, this Prometheus. */
function doctorConfig(endpoint: string, over: Partial<OrchConfig['server']> = {}): OrchConfig {
  const config = structuredClone(serveConfig) as OrchConfig
  config.server = { ...config.server, port, ...over }
  config.infrastructure_system.performance_monitoring.integrations.grafana_prometheus = { enabled: true, endpoint }
  return config
}

async function until(what: string, probe: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`)
    await Bun.sleep(100)
  }
}

beforeAll(async () => {
  ollama = await startFakeOllama()
  t = await startTestServe({
    tweak: (c) => {
      c.server.token = TOKEN
      c.infrastructure_system.performance_monitoring.export_formats = ['none']
      c.infrastructure_system.performance_monitoring.integrations.grafana_prometheus.enabled = true
    },
  })
  port = Number(new URL(t.url).port)
  serveConfig = structuredClone(t.config)
  // The scrape config of the compose layout, aimed at this serve instead of the `serve` service.
  const files = renderManifests(t.config, parseManifestFlags({ format: 'compose', instances: '1' }, '0.0.0-test'))
  const generated = YAML.parse(files.find((f) => f.path === 'monitoring/prometheus.yml')?.content ?? '')
  const job = generated.scrape_configs[0]
  expect(job.static_configs).toEqual([{ targets: [`serve:${t.config.server.port}`] }])
  expect(job.authorization).toEqual({ type: 'Bearer', credentials_file: '/tmp/orch-token' })
  job.scrape_interval = '1s'
  job.static_configs = [{ targets: [`127.0.0.1:${port}`] }]
  prom = await startPrometheus(
    (dir) => {
      job.authorization.credentials_file = join(dir, 'orch-token')
      return YAML.stringify(generated)
    },
    { 'orch-token': TOKEN },
  )
  const checked = await promtoolCheckConfig(join(prom.dir, 'prometheus.yml'))
  expect(checked.output).toContain('SUCCESS')
  expect(checked.code).toBe(0)
}, 60_000)

afterAll(async () => {
  await prom?.stop()
  await t?.stop()
  await ollama?.stop()
})

describe('orch doctor and a real Prometheus', () => {
  test('scraping this orch with its token: ok, up', async () => {
    const server = prom as PrometheusServer
    await until('Prometheus scraping orch', async () => {
      const up = await server.query(`up{instance="127.0.0.1:${port}"}`)
      return up[0]?.value[1] === '1'
    })
    const finding = checkPrometheus(await gatherPrometheus(doctorConfig(server.url), 2000))
    expect(finding).toEqual({
      id: 'prometheus',
      status: 'ok',
      title: 'prometheus',
      detail: `${server.url} scrapes this orch as 127.0.0.1:${port} (job orch): up`,
    })
  }, 30_000)

  test("every expression of orch's Grafana dashboard evaluates on this Prometheus, and the variables find this orch", async () => {
    const server = prom as PrometheusServer
    const dashboard = JSON.parse(readFileSync(join(ROOT, 'docs/grafana/orch-dashboard.json'), 'utf8'))
    const failed: string[] = []
    for (const { panel, expr } of expressionsOf(dashboard)) {
      const response = await fetch(`${server.url}/api/v1/query?query=${encodeURIComponent(interpolate(expr))}`)
      const body = (await response.json()) as { status: string; error?: string }
      if (body.status !== 'success') failed.push(`${panel}: ${body.error}`)
    }
    expect(failed).toEqual([])
    const instances = await server.query('orch_build_info')
    expect(instances.map((r) => r.metric.instance)).toEqual([hostname()])
  })

  test('a Prometheus that scrapes another orch: a warning whose fix is the scrape job for this one', async () => {
    const server = prom as PrometheusServer
    const other = closedPort()
    const finding = checkPrometheus(await gatherPrometheus(doctorConfig(server.url, { port: other }), 2000))
    expect(finding.status).toBe('warning')
    expect(finding.detail).toStartWith(`${server.url} answers, but none of its 1 target(s) is this orch (127.0.0.1:${other}, `)
    const job = YAML.parse(String(finding.fix?.split('then reload Prometheus: ')[1]))
    expect(job).toMatchObject({
      metrics_path: '/metrics',
      authorization: { type: 'Bearer', credentials_file: '/etc/prometheus/orch-token' },
      static_configs: [{ targets: [`127.0.0.1:${other}`] }],
    })
  })

  test('through the CLI: the same warning, in the text and in --json (exit 0: a warning does not fail the doctor)', async () => {
    const server = prom as PrometheusServer
    const p = project(monitoredYaml(server.url))
    const json = await p.run(['--json'])
    const findings = json.json<{ findings: Array<{ id: string; status: string; detail: string }> }>().findings
    expect(findings.filter((f) => f.id === 'prometheus').map((f) => f.status)).toEqual(['warning'])
    const text = await p.run()
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(/\nwarn\s+prometheus\s+http:\/\/127\.0\.0\.1:\d+ answers, but none of its 1 target\(s\) is this orch/)
    expect(text.stdout).toContain('fix: add this job under scrape_configs in prometheus.yml, then reload Prometheus: {')
  }, 30_000)

  test('orch serve gone: Prometheus still lists it, its last scrape failed: a warning', async () => {
    const server = prom as PrometheusServer
    await t?.stop()
    t = undefined
    await until('the scrape failing', async () => (await server.query(`up{instance="127.0.0.1:${port}"}`))[0]?.value[1] === '0')
    const config = doctorConfig(server.url)
    const finding = checkPrometheus(await gatherPrometheus(config, 2000))
    expect(finding.status).toBe('warning')
    expect(finding.detail).toBe(`${server.url} scrapes this orch as 127.0.0.1:${port} (job orch), but its last scrape failed (up 0)`)
  }, 30_000)

  test('Prometheus unreachable: an error, and orch doctor exits 1', async () => {
    const server = prom as PrometheusServer
    const url = server.url
    const config = doctorConfig(url)
    await server.stop()
    prom = undefined
    const finding = checkPrometheus(await gatherPrometheus(config, 2000))
    expect(finding.status).toBe('error')
    expect(finding.detail).toStartWith(`${url} unreachable: `)
    const r = await project(monitoredYaml(url)).run()
    expect(r.code).toBe(1)
    expect(r.stdout).toContain('0 warnings, 1 error')
    expect(r.stdout).toMatch(new RegExp(`\\nERROR\\s+prometheus\\s+${url.replace(/\./g, '\\.')} unreachable: `))
  }, 30_000)
})
