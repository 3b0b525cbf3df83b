/**
 * `orch scale manifests` with performance_monitoring.integrations.grafana_prometheus.enabled: a Prometheus
 * scraping the serve with its token, and a Grafana provisioned with it and orch's dashboard; compose
 * services valid by the Compose schema, Kubernetes objects valid by their OpenAPI schemas.
 */
import { describe, expect, test } from 'bun:test'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as v from 'valibot'
import YAML from 'yaml'
import { resolveConfig } from '../../src/config/load.ts'
import { type OrchConfig, type OrchConfigInput, OrchConfigSchema } from '../../src/config/schema.ts'
import { type ManifestFile, parseManifestFlags, renderManifests } from '../../src/scale/manifests.ts'
import { scrapeJob, scrapeJobLine } from '../../src/scale/manifests-monitoring.ts'
import { ROOT, tempDir } from '../helpers/cli.ts'
import { composeProblems, kubernetesDocuments, kubernetesProblem } from '../helpers/manifest-schemas.ts'

const TOKEN = 'a-token-of-the-test-0123456789'
const config = (input: OrchConfigInput = {}): OrchConfig => v.parse(OrchConfigSchema, input)
const monitored = (enabled = true) =>
  config({
    server: { token: TOKEN, port: 9111 },
    infrastructure_system: {
      distributed_simulation: { redis_url: 'redis://redis.internal:6380/2' },
      performance_monitoring: { integrations: { grafana_prometheus: { enabled, endpoint: 'http://prom.example:9090' } } },
    },
    backends: [{ name: 'local', url: 'http://127.0.0.1:11434' }],
  })
const render = (cfg: OrchConfig, format: 'compose' | 'k8s') =>
  renderManifests(cfg, parseManifestFlags({ format, instances: '2', ...(format === 'k8s' ? { namespace: 'orch' } : {}) }, '9.8.7'))
const file = (files: ManifestFile[], path: string): string => {
  const found = files.find((f) => f.path === path)
  if (!found) throw new Error(`no ${path} among ${files.map((f) => f.path).join(', ')}`)
  return found.content
}
const committedDashboard = () => JSON.parse(readFileSync(join(ROOT, 'docs/grafana/orch-dashboard.json'), 'utf8'))

/** Every `datasource` object of a dashboard. */
function datasources(node: unknown, out: unknown[] = []): unknown[] {
  if (Array.isArray(node)) for (const item of node) datasources(item, out)
  else if (node && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if (key === 'datasource') out.push(value)
      else datasources(value, out)
    }
  }
  return out
}

describe('the scrape job', () => {
  test('scrapes /metrics keeping orch’s instance label, with the token file as bearer only when there is a token', () => {
    expect(scrapeJob({ targets: ['serve:9097'], tokenFile: '/t' })).toEqual({
      job_name: 'orch',
      scrape_interval: '15s',
      metrics_path: '/metrics',
      honor_labels: true,
      authorization: { type: 'Bearer', credentials_file: '/t' },
      static_configs: [{ targets: ['serve:9097'] }],
    })
    expect(scrapeJob({ targets: ['127.0.0.1:9097'] })).not.toHaveProperty('authorization')
    const line = scrapeJobLine({ targets: ['127.0.0.1:9097'] })
    expect(line).not.toContain('\n')
    expect(YAML.parse(line)).toEqual(scrapeJob({ targets: ['127.0.0.1:9097'] }))
  })
})

describe('docker compose', () => {
  const files = render(monitored(), 'compose')
  const compose = YAML.parse(file(files, 'compose.yaml'))

  test('adds prometheus and grafana services, valid by the Compose Specification schema', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['grafana', 'ollama', 'prometheus', 'redis', 'serve', 'worker'])
    expect(composeProblems(compose)).toEqual([])
    expect(compose.services.prometheus.image).toBe('prom/prometheus')
    expect(compose.services.grafana.image).toBe('grafana/grafana')
    expect(Object.keys(compose.volumes)).toEqual(expect.arrayContaining(['prometheus-data', 'grafana-data']))
    // Every config a service mounts is declared, and its file is among the files written.
    const paths = new Set(files.map((f) => `./${f.path}`))
    for (const name of ['prometheus', 'grafana']) {
      for (const { source } of compose.services[name].configs) expect(paths.has(compose.configs[source].file)).toBe(true)
    }
  })

  test("prometheus.yml scrapes the serve's /metrics with the token (from the env file, never from a file) as bearer", () => {
    const prom = YAML.parse(file(files, 'monitoring/prometheus.yml'))
    expect(prom.scrape_configs).toEqual([
      {
        job_name: 'orch',
        scrape_interval: '15s',
        metrics_path: '/metrics',
        honor_labels: true,
        authorization: { type: 'Bearer', credentials_file: '/tmp/orch-token' },
        static_configs: [{ targets: ['serve:9111'] }],
      },
    ])
    const service = compose.services.prometheus
    expect(service.env_file).toEqual(['orch.env'])
    expect(service.command[0]).toContain(
      `"$$ORCH_SERVER_TOKEN" > /tmp/orch-token && exec /bin/prometheus --config.file=/etc/prometheus/prometheus.yml`,
    )
    for (const f of files) expect(`${f.path}: ${f.content.includes(TOKEN)}`).toBe(`${f.path}: false`)
  })

  test('grafana is provisioned with that Prometheus and the dashboard, whose panels point at the provisioned uid', () => {
    const ds = YAML.parse(file(files, 'monitoring/grafana-datasource.yaml'))
    expect(ds.datasources).toEqual([expect.objectContaining({ type: 'prometheus', uid: 'orch-prometheus', url: 'http://prometheus:9090' })])
    const provider = YAML.parse(file(files, 'monitoring/grafana-dashboards.yaml'))
    expect(provider.providers[0]).toMatchObject({ type: 'file', options: { path: '/etc/grafana/dashboards' } })
    const mounted = compose.services.grafana.configs.map((c: { target: string }) => c.target)
    expect(mounted).toContain('/etc/grafana/dashboards/orch-dashboard.json')
    const dashboard = JSON.parse(file(files, 'monitoring/orch-dashboard.json'))
    expect(dashboard.__inputs).toBeUndefined()
    expect(file(files, 'monitoring/orch-dashboard.json')).not.toContain('DS_PROMETHEUS')
    const refs = datasources(dashboard)
    expect(refs.length).toBe(datasources(committedDashboard()).length)
    expect(new Set(refs.map((r) => JSON.stringify(r)))).toEqual(new Set([JSON.stringify({ type: 'prometheus', uid: 'orch-prometheus' })]))
    expect(dashboard.panels.length).toBe(committedDashboard().panels.length)
  })

  test("the containers' orch.yaml keeps the keys, pointing doctor at the deployment's Prometheus; orch reads it back", () => {
    const dir = tempDir('orch-monitoring-')
    try {
      writeFileSync(join(dir.path, 'orch.yaml'), file(files, 'orch.yaml'))
      const { config: back } = resolveConfig({ cwd: dir.path, env: {}, configFile: join(dir.path, 'orch.yaml') })
      expect(back.infrastructure_system.performance_monitoring.integrations.grafana_prometheus).toEqual({
        enabled: true,
        endpoint: 'http://prometheus:9090',
      })
    } finally {
      dir.cleanup()
    }
  })

  test('with enabled: false nothing is added', () => {
    const plain = render(monitored(false), 'compose')
    expect(Object.keys(YAML.parse(file(plain, 'compose.yaml')).services)).not.toContain('prometheus')
    expect(plain.filter((f) => f.path.startsWith('monitoring/'))).toEqual([])
  })
})

describe('Kubernetes', () => {
  const files = render(monitored(), 'k8s')
  const objects = kubernetesDocuments(file(files, 'k8s/monitoring.yaml'))
  const find = (kind: string, name: string) => {
    const found = objects.find((o) => o.kind === kind && o.metadata?.name === name)
    if (!found) throw new Error(`no ${kind} ${name}`)
    return found
  }

  test('k8s/monitoring.yaml: Prometheus and Grafana as ConfigMaps, Deployments and Services, each valid by its schema', () => {
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(
      [
        'ConfigMap/orch-grafana-dashboards',
        'ConfigMap/orch-grafana-provisioning',
        'ConfigMap/orch-prometheus-config',
        'Deployment/orch-grafana',
        'Deployment/orch-prometheus',
        'Service/orch-grafana',
        'Service/orch-prometheus',
      ].sort(),
    )
    expect(objects.map(kubernetesProblem).filter(Boolean)).toEqual([])
    expect(objects.every((o) => o.metadata.namespace === 'orch')).toBe(true)
    const broken = structuredClone(find('Deployment', 'orch-prometheus'))
    broken.spec.template.spec.containers[0].ports[0].containerPort = '9090'
    expect(kubernetesProblem(broken)).toContain('containerPort must be integer')
  })

  test('Prometheus scrapes the serve Service with the token mounted from the Secret; Grafana mounts its provisioning', () => {
    const prom = YAML.parse(find('ConfigMap', 'orch-prometheus-config').data['prometheus.yml'])
    expect(prom.scrape_configs[0]).toMatchObject({
      authorization: { credentials_file: '/etc/prometheus/orch/token' },
      static_configs: [{ targets: ['orch-serve:9111'] }],
    })
    const pod = find('Deployment', 'orch-prometheus').spec.template.spec
    expect(pod.volumes).toContainEqual({
      name: 'token',
      secret: { secretName: 'orch-secrets', items: [{ key: 'ORCH_SERVER_TOKEN', path: 'token' }] },
    })
    const grafana = find('Deployment', 'orch-grafana').spec.template.spec
    const volumes = new Set(grafana.volumes.map((vol: { name: string }) => vol.name))
    for (const mount of grafana.containers[0].volumeMounts) expect(volumes.has(mount.name)).toBe(true)
    const provisioning = find('ConfigMap', 'orch-grafana-provisioning').data
    expect(YAML.parse(provisioning['datasource.yaml']).datasources[0].url).toBe('http://orch-prometheus:9090')
    const dashboard = JSON.parse(find('ConfigMap', 'orch-grafana-dashboards').data['orch-dashboard.json'])
    expect(dashboard.uid).toBe('orch-overview')
    const orchYaml = YAML.parse(kubernetesDocuments(file(files, 'k8s/configmap.yaml'))[0].data['orch.yaml'])
    expect(orchYaml.infrastructure_system.performance_monitoring.integrations.grafana_prometheus.endpoint).toBe(
      'http://orch-prometheus:9090',
    )
  })

  test('with enabled: false there is no k8s/monitoring.yaml', () => {
    expect(render(monitored(false), 'k8s').map((f) => f.path)).not.toContain('k8s/monitoring.yaml')
  })
})
