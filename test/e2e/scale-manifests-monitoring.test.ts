/**
 * `orch scale manifests` through the CLI with the monitoring switch set by its variable
 * (ORCH_PROMETHEUS_ENABLED): the Prometheus and Grafana files are written beside the others, valid.
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import YAML from 'yaml'
import { runCli, tempDir } from '../helpers/cli.ts'
import { composeProblems, kubernetesDocuments, kubernetesProblem } from '../helpers/manifest-schemas.ts'

const TOKEN = 'token-of-the-e2e-test-0123456789'
const work = tempDir('orch-scale-monitoring-')
writeFileSync(
  join(work.path, 'cluster.yaml'),
  `server:\n  token: ${TOKEN}\ninfrastructure_system:\n  distributed_simulation:\n    redis_url: redis://redis.internal:6379\n`,
)
afterAll(() => work.cleanup())

const run = (args: string[], env: Record<string, string> = {}) =>
  runCli(['scale', 'manifests', ...args, '--config', 'cluster.yaml'], { cwd: work.path, env })

describe('orch scale manifests with ORCH_PROMETHEUS_ENABLED=true', () => {
  test('compose --out: the monitoring files too, the compose file valid, no secret in any file', async () => {
    const result = await run(['--format', 'compose', '--instances', '1', '--out', 'compose', '--json'], { ORCH_PROMETHEUS_ENABLED: 'true' })
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    const { written } = result.json<{ written: string[] }>()
    expect(written.filter((p) => p.startsWith('compose/monitoring/'))).toEqual([
      'compose/monitoring/prometheus.yml',
      'compose/monitoring/grafana-datasource.yaml',
      'compose/monitoring/grafana-dashboards.yaml',
      'compose/monitoring/orch-dashboard.json',
    ])
    const compose = YAML.parse(readFileSync(join(work.path, 'compose/compose.yaml'), 'utf8'))
    expect(composeProblems(compose)).toEqual([])
    expect(Object.keys(compose.services)).toEqual(expect.arrayContaining(['prometheus', 'grafana']))
    for (const path of written) expect(`${path}: ${readFileSync(join(work.path, path), 'utf8').includes(TOKEN)}`).toBe(`${path}: false`)
    const orchYaml = YAML.parse(readFileSync(join(work.path, 'compose/orch.yaml'), 'utf8'))
    expect(orchYaml.infrastructure_system.performance_monitoring.integrations.grafana_prometheus).toEqual({
      enabled: true,
      endpoint: 'http://prometheus:9090',
    })
  })

  test('k8s: k8s/monitoring.yaml among the printed files, every object valid; without the variable it is not there', async () => {
    const result = await run(['--format', 'k8s', '--instances', '1', '--json'], { ORCH_PROMETHEUS_ENABLED: 'true' })
    expect(result.code).toBe(0)
    const { files } = result.json<{ files: Array<{ path: string; content: string }> }>()
    const monitoring = files.find((f) => f.path === 'k8s/monitoring.yaml')
    const objects = kubernetesDocuments(monitoring?.content ?? '')
    expect(objects.map((o) => o.kind).sort()).toEqual([
      'ConfigMap',
      'ConfigMap',
      'ConfigMap',
      'Deployment',
      'Deployment',
      'Service',
      'Service',
    ])
    expect(objects.map(kubernetesProblem).filter(Boolean)).toEqual([])
    const plain = await run(['--format', 'k8s', '--instances', '1', '--json'])
    expect(plain.json<{ files: Array<{ path: string }> }>().files.map((f) => f.path)).not.toContain('k8s/monitoring.yaml')
  })
})
