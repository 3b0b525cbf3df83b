/**
 * The monitoring stack of a deployment, with performance_monitoring.integrations.grafana_prometheus.enabled:
 * a Prometheus scraping orch serve's /metrics (with the serve's token as bearer), and a Grafana provisioned
 * with that Prometheus as its data source and orch's dashboard (docs/grafana/orch-dashboard.json, made by
 * scripts/grafana/dashboard.ts). The same scrape job is what `orch doctor` proposes when Prometheus does
 * not scrape this orch (docs/grafana.md).
 */
import YAML from 'yaml'
import dashboard from '../../docs/grafana/orch-dashboard.json' with { type: 'json' }
import type { OrchConfig } from '../config/schema.ts'
import { SERVER_TOKEN_VAR } from './manifests-config.ts'
import type { ManifestFile } from './manifests-types.ts'

export const PROMETHEUS_IMAGE = 'prom/prometheus'
export const GRAFANA_IMAGE = 'grafana/grafana'
export const PROMETHEUS_PORT = 9090
export const GRAFANA_PORT = 3000
/** The uid of the provisioned data source; the provisioned dashboard's panels point at it. */
export const DATASOURCE_UID = 'orch-prometheus'
/** Where Prometheus reads the scrape config, and where the token file is, in its container. */
export const PROMETHEUS_CONFIG = '/etc/prometheus/prometheus.yml'
/** Where Grafana's provider finds the dashboard file. */
export const DASHBOARDS_DIR = '/etc/grafana/dashboards'
export const DASHBOARD_FILE = 'orch-dashboard.json'

export function monitoringEnabled(config: OrchConfig): boolean {
  return config.infrastructure_system.performance_monitoring.integrations.grafana_prometheus.enabled
}

export interface ScrapeJob {
  /** `host:port` of each orch serve, as Prometheus labels the target's `instance`. */
  targets: string[]
  /** A file holding the bearer token (server.token); absent when orch serve has none. */
  tokenFile?: string
  interval?: string
}

/** The scrape job of orch: /metrics, orch's own `instance` label kept (honor_labels), the token as bearer. */
export function scrapeJob(job: ScrapeJob): Record<string, unknown> {
  return {
    job_name: 'orch',
    scrape_interval: job.interval ?? '15s',
    metrics_path: '/metrics',
    honor_labels: true,
    ...(job.tokenFile ? { authorization: { type: 'Bearer', credentials_file: job.tokenFile } } : {}),
    static_configs: [{ targets: job.targets }],
  }
}

/** The job on one line (YAML flow style), for a fix to quote. */
export function scrapeJobLine(job: ScrapeJob): string {
  return YAML.stringify(scrapeJob(job), { collectionStyle: 'flow', lineWidth: 0 }).trim()
}

export function renderPrometheusConfig(job: ScrapeJob, header: string[]): string {
  const config = { global: { scrape_interval: '15s', evaluation_interval: '15s' }, scrape_configs: [scrapeJob(job)] }
  return `${header.map((l) => `# ${l}`).join('\n')}\n${YAML.stringify(config, { lineWidth: 0 })}`
}

/** Grafana's data source provisioning: the deployment's Prometheus, under the uid the dashboard uses. */
export function renderGrafanaDatasource(prometheusUrl: string): string {
  const file = {
    apiVersion: 1,
    datasources: [
      {
        name: 'Prometheus',
        type: 'prometheus',
        uid: DATASOURCE_UID,
        access: 'proxy',
        url: prometheusUrl,
        isDefault: true,
        editable: false,
      },
    ],
  }
  return `# Grafana data source provisioning: the Prometheus that scrapes orch (docs/grafana.md)\n${YAML.stringify(file)}`
}

/** Grafana's dashboard provider: the files under DASHBOARDS_DIR, in an "orch" folder. */
export function renderGrafanaDashboards(): string {
  const file = {
    apiVersion: 1,
    providers: [
      {
        name: 'orch',
        type: 'file',
        folder: 'orch',
        disableDeletion: false,
        allowUiUpdates: true,
        options: { path: DASHBOARDS_DIR, foldersFromFilesStructure: false },
      },
    ],
  }
  return `# Grafana dashboard provisioning: orch's dashboard (docs/grafana.md)\n${YAML.stringify(file)}`
}

/**
 * The dashboard as Grafana provisions it: import inputs are not read from a provisioned file, so each
 * `${DS_PROMETHEUS}` becomes the provisioned data source's uid, and the import sections go.
 */
export function renderProvisionedDashboard(): string {
  const { __inputs: _inputs, __requires: _requires, ...rest } = dashboard as Record<string, unknown>
  const text = JSON.stringify(rest, null, 2).replaceAll(`\${DS_PROMETHEUS}`, DATASOURCE_UID)
  return `${text}\n`
}

/** The files both layouts provision Grafana with, by their name in the container. */
function grafanaFiles(prometheusUrl: string) {
  return {
    datasource: renderGrafanaDatasource(prometheusUrl),
    dashboards: renderGrafanaDashboards(),
    dashboard: renderProvisionedDashboard(),
  }
}

const made = (version: string) => `Made by \`orch scale manifests\` (orch ${version}); docs/grafana.md`

/** The compose layout's part: services prometheus and grafana, their configs and volumes, and the files. */
export function composeMonitoring(config: OrchConfig, version: string, envFile: string) {
  const dir = 'monitoring'
  const tokenFile = '/tmp/orch-token'
  const prometheusYaml = renderPrometheusConfig({ targets: [`serve:${config.server.port}`], tokenFile }, [
    "Prometheus scraping orch serve's /metrics, with its token (ORCH_SERVER_TOKEN, written to a file at start) as bearer.",
    made(version),
  ])
  const grafana = grafanaFiles(`http://prometheus:${PROMETHEUS_PORT}`)
  const files: ManifestFile[] = [
    { path: `${dir}/prometheus.yml`, content: prometheusYaml },
    { path: `${dir}/grafana-datasource.yaml`, content: grafana.datasource },
    { path: `${dir}/grafana-dashboards.yaml`, content: grafana.dashboards },
    { path: `${dir}/${DASHBOARD_FILE}`, content: grafana.dashboard },
  ]
  // The token comes from the env file; `$$` is a literal `$` for compose, so the container's shell expands it.
  const start = `printf '%s' "$$${SERVER_TOKEN_VAR}" > ${tokenFile} && exec /bin/prometheus --config.file=${PROMETHEUS_CONFIG} --storage.tsdb.path=/prometheus`
  const services = {
    prometheus: {
      image: PROMETHEUS_IMAGE,
      entrypoint: ['/bin/sh', '-c'],
      command: [start],
      env_file: [envFile],
      configs: [{ source: 'prometheus_config', target: PROMETHEUS_CONFIG }],
      tmpfs: ['/tmp'],
      volumes: ['prometheus-data:/prometheus'],
      ports: [{ target: PROMETHEUS_PORT, published: String(PROMETHEUS_PORT), protocol: 'tcp' }],
      depends_on: { serve: { condition: 'service_started' } },
      restart: 'unless-stopped',
    },
    grafana: {
      image: GRAFANA_IMAGE,
      configs: [
        { source: 'grafana_datasource', target: '/etc/grafana/provisioning/datasources/orch-prometheus.yaml' },
        { source: 'grafana_dashboards', target: '/etc/grafana/provisioning/dashboards/orch.yaml' },
        { source: 'grafana_dashboard', target: `${DASHBOARDS_DIR}/${DASHBOARD_FILE}` },
      ],
      volumes: ['grafana-data:/var/lib/grafana'],
      ports: [{ target: GRAFANA_PORT, published: String(GRAFANA_PORT), protocol: 'tcp' }],
      depends_on: { prometheus: { condition: 'service_started' } },
      restart: 'unless-stopped',
    },
  }
  const configs = {
    prometheus_config: { file: `./${dir}/prometheus.yml` },
    grafana_datasource: { file: `./${dir}/grafana-datasource.yaml` },
    grafana_dashboards: { file: `./${dir}/grafana-dashboards.yaml` },
    grafana_dashboard: { file: `./${dir}/${DASHBOARD_FILE}` },
  }
  return { services, configs, volumes: { 'prometheus-data': {}, 'grafana-data': {} }, files }
}
