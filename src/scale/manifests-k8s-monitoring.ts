/**
 * The Kubernetes layout's monitoring stack (grafana_prometheus.enabled): Prometheus (its scrape config in a
 * ConfigMap, the serve's token mounted from the Secret orch-secrets) and Grafana (data source, dashboard
 * provider and orch's dashboard in ConfigMaps), each a Deployment and a Service (docs/grafana.md).
 */
import type { OrchConfig } from '../config/schema.ts'
import { SERVER_TOKEN_VAR } from './manifests-config.ts'
import { deployment, meta, NAMES, type Obj, SECRET_NAME, selectorLabels, service } from './manifests-k8s-objects.ts'
import {
  DASHBOARD_FILE,
  DASHBOARDS_DIR,
  GRAFANA_IMAGE,
  GRAFANA_PORT,
  PROMETHEUS_CONFIG,
  PROMETHEUS_IMAGE,
  PROMETHEUS_PORT,
  renderGrafanaDashboards,
  renderGrafanaDatasource,
  renderPrometheusConfig,
  renderProvisionedDashboard,
} from './manifests-monitoring.ts'
import type { ManifestOptions } from './manifests-types.ts'

export const MONITORING_NAMES = {
  prometheus: 'orch-prometheus',
  prometheusConfig: 'orch-prometheus-config',
  grafana: 'orch-grafana',
  grafanaProvisioning: 'orch-grafana-provisioning',
  grafanaDashboards: 'orch-grafana-dashboards',
} as const

export const PROMETHEUS_URL = `http://${MONITORING_NAMES.prometheus}:${PROMETHEUS_PORT}`
const TOKEN_DIR = '/etc/prometheus/orch'
const TOKEN_FILE = 'token'

/** Small: one orch deployment's series. Raise memory with the number of serve replicas and models. */
const PROMETHEUS_RESOURCES = { requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '1Gi' } }
const GRAFANA_RESOURCES = { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } }

const containerSecurity = { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } }

function configMap(name: string, data: Record<string, string>, options: ManifestOptions): Obj {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: meta(name, 'monitoring', options), data }
}

function prometheusObjects(config: OrchConfig, options: ManifestOptions, made: string): Obj[] {
  const yaml = renderPrometheusConfig({ targets: [`${NAMES.serve}:${config.server.port}`], tokenFile: `${TOKEN_DIR}/${TOKEN_FILE}` }, [
    `Prometheus scraping orch serve's /metrics through the Service ${NAMES.serve}, with its token (${SECRET_NAME}) as bearer.`,
    made,
  ])
  const probe = { httpGet: { path: '/-/ready', port: PROMETHEUS_PORT }, periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 3 }
  const template = {
    metadata: { labels: selectorLabels('prometheus') },
    spec: {
      securityContext: { runAsNonRoot: true, runAsUser: 65534, runAsGroup: 65534, fsGroup: 65534 },
      containers: [
        {
          name: 'prometheus',
          image: PROMETHEUS_IMAGE,
          args: [`--config.file=${PROMETHEUS_CONFIG}`, '--storage.tsdb.path=/prometheus', '--storage.tsdb.retention.time=15d'],
          ports: [{ name: 'http', containerPort: PROMETHEUS_PORT }],
          resources: PROMETHEUS_RESOURCES,
          securityContext: containerSecurity,
          readinessProbe: probe,
          livenessProbe: { ...probe, httpGet: { path: '/-/healthy', port: PROMETHEUS_PORT }, initialDelaySeconds: 10 },
          volumeMounts: [
            { name: 'config', mountPath: PROMETHEUS_CONFIG, subPath: 'prometheus.yml', readOnly: true },
            { name: 'token', mountPath: TOKEN_DIR, readOnly: true },
            { name: 'data', mountPath: '/prometheus' },
          ],
        },
      ],
      volumes: [
        { name: 'config', configMap: { name: MONITORING_NAMES.prometheusConfig } },
        { name: 'token', secret: { secretName: SECRET_NAME, items: [{ key: SERVER_TOKEN_VAR, path: TOKEN_FILE }] } },
        { name: 'data', emptyDir: {} },
      ],
    },
  }
  return [
    configMap(MONITORING_NAMES.prometheusConfig, { 'prometheus.yml': yaml }, options),
    deployment(MONITORING_NAMES.prometheus, 'prometheus', 1, template, options),
    service(MONITORING_NAMES.prometheus, 'prometheus', PROMETHEUS_PORT, options),
  ]
}

function grafanaObjects(options: ManifestOptions): Obj[] {
  const probe = { httpGet: { path: '/api/health', port: GRAFANA_PORT }, periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 3 }
  const template = {
    metadata: { labels: selectorLabels('grafana') },
    spec: {
      securityContext: { runAsNonRoot: true, runAsUser: 472, runAsGroup: 472, fsGroup: 472 },
      containers: [
        {
          name: 'grafana',
          image: GRAFANA_IMAGE,
          ports: [{ name: 'http', containerPort: GRAFANA_PORT }],
          resources: GRAFANA_RESOURCES,
          securityContext: containerSecurity,
          readinessProbe: probe,
          livenessProbe: { ...probe, initialDelaySeconds: 30 },
          volumeMounts: [
            { name: 'provisioning', mountPath: '/etc/grafana/provisioning/datasources/orch-prometheus.yaml', subPath: 'datasource.yaml' },
            { name: 'provisioning', mountPath: '/etc/grafana/provisioning/dashboards/orch.yaml', subPath: 'dashboards.yaml' },
            { name: 'dashboards', mountPath: DASHBOARDS_DIR, readOnly: true },
            { name: 'data', mountPath: '/var/lib/grafana' },
          ],
        },
      ],
      volumes: [
        { name: 'provisioning', configMap: { name: MONITORING_NAMES.grafanaProvisioning } },
        { name: 'dashboards', configMap: { name: MONITORING_NAMES.grafanaDashboards } },
        { name: 'data', emptyDir: {} },
      ],
    },
  }
  return [
    configMap(
      MONITORING_NAMES.grafanaProvisioning,
      { 'datasource.yaml': renderGrafanaDatasource(PROMETHEUS_URL), 'dashboards.yaml': renderGrafanaDashboards() },
      options,
    ),
    configMap(MONITORING_NAMES.grafanaDashboards, { [DASHBOARD_FILE]: renderProvisionedDashboard() }, options),
    deployment(MONITORING_NAMES.grafana, 'grafana', 1, template, options),
    service(MONITORING_NAMES.grafana, 'grafana', GRAFANA_PORT, options),
  ]
}

export function monitoringObjects(config: OrchConfig, options: ManifestOptions, made: string): Obj[] {
  return [...prometheusObjects(config, options, made), ...grafanaObjects(options)]
}
