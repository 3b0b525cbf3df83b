/**
 * The Kubernetes layout, one file per part under k8s/ (`kubectl apply -f k8s/`): the containers' orch.yaml
 * in a ConfigMap; serve (Deployment, Service; liveness /health, readiness /ready); workers (Deployment of
 * --instances replicas, scaled by a CPU HorizontalPodAutoscaler, or with --keda by a KEDA ScaledObject on
 * the queue's ready set); Ollama for the backends that were on this machine's loopback; with --with-redis,
 * a Redis StatefulSet. Secrets are references to a Secret the user creates (secrets.example.yaml says how).
 *
 * Resources: the Ollama pods get the row of orch's hardware table (src/capacity/plan.ts) for the
 * concurrency each serves, CPU cores as request and limit of the row's range, its RAM as both; orch's own
 * containers, which proxy model calls and keep no queue of their own, get ORCH_RESOURCES.
 */
import { createHash } from 'node:crypto'
import { recommendHardware } from '../capacity/plan.ts'
import type { OrchConfig } from '../config/schema.ts'
import { UsageError } from '../core/errors.ts'
import {
  type ClusterAddresses,
  CONFIG_MOUNT,
  externalRedisUrl,
  manifestYaml,
  movedBackends,
  OLLAMA_PORT,
  ollamaConcurrency,
  renderContainerConfig,
  STATE_DIR,
  secretVars,
} from './manifests-config.ts'
import { ORCH_UID } from './manifests-docker.ts'
import { ollamaObjects, redisObjects } from './manifests-k8s-backing.ts'
import { MONITORING_NAMES, monitoringObjects, PROMETHEUS_URL } from './manifests-k8s-monitoring.ts'
import { deployment, meta, NAMES, type Obj, SECRET_NAME, secretEnv, selectorLabels, service } from './manifests-k8s-objects.ts'
import { GRAFANA_PORT, monitoringEnabled, PROMETHEUS_PORT } from './manifests-monitoring.ts'
import type { ManifestFile, ManifestOptions } from './manifests-types.ts'

/** orch serve and orch worker: small, as the model servers do the heavy work. */
export const ORCH_RESOURCES = { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '1', memory: '1Gi' } }

function addresses(config: OrchConfig, options: ManifestOptions): ClusterAddresses {
  const serve = NAMES.serve
  return {
    redisUrl: options.withRedis ? `redis://${NAMES.redis}:6379` : externalRedisUrl(config),
    ollamaUrl: `http://${NAMES.ollama}:${OLLAMA_PORT}`,
    serveHosts: [
      serve,
      `${serve}.${options.namespace}`,
      `${serve}.${options.namespace}.svc`,
      `${serve}.${options.namespace}.svc.cluster.local`,
    ],
    prometheusUrl: PROMETHEUS_URL,
  }
}

const orchSecurity = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'] },
}

const podSecurity = {
  runAsNonRoot: true,
  runAsUser: ORCH_UID,
  runAsGroup: ORCH_UID,
  fsGroup: ORCH_UID,
  seccompProfile: { type: 'RuntimeDefault' },
}

/** The pod of an orch container; its name is its component (serve, worker). */
function orchPod(config: OrchConfig, options: ManifestOptions, checksum: string, container: Obj & { name: string }): Obj {
  const { name, ...rest } = container
  return {
    metadata: { labels: selectorLabels(name), annotations: { 'orch/config-sha256': checksum } },
    spec: {
      securityContext: podSecurity,
      terminationGracePeriodSeconds: Math.ceil(config.graceful_shutdown_timeout_ms / 1000) + 5,
      containers: [
        {
          name,
          image: options.image,
          imagePullPolicy: 'IfNotPresent',
          resources: ORCH_RESOURCES,
          securityContext: orchSecurity,
          ...rest,
          volumeMounts: [
            { name: 'config', mountPath: CONFIG_MOUNT, subPath: 'orch.yaml', readOnly: true },
            { name: 'state', mountPath: STATE_DIR },
            { name: 'tmp', mountPath: '/tmp' },
          ],
        },
      ],
      volumes: [
        { name: 'config', configMap: { name: NAMES.config } },
        { name: 'state', emptyDir: {} },
        { name: 'tmp', emptyDir: {} },
      ],
    },
  }
}

/** A probe of orch serve: with `Host: localhost`, which the serve always accepts (the pod IP it is not told). */
const httpProbe = (path: string, port: number, period: number) => ({
  httpGet: { path, port, httpHeaders: [{ name: 'Host', value: 'localhost' }] },
  periodSeconds: period,
  timeoutSeconds: 3,
  failureThreshold: 3,
})

function serveObjects(config: OrchConfig, options: ManifestOptions, checksum: string): Obj[] {
  const port = config.server.port
  const container = {
    name: 'serve',
    args: ['serve', '--no-tasks', '--host', '0.0.0.0', '--port', String(port), '--config', CONFIG_MOUNT],
    ports: [{ name: 'http', containerPort: port }],
    env: secretEnv(secretVars(config)),
    livenessProbe: { ...httpProbe('/health', port, 10), initialDelaySeconds: 5 },
    readinessProbe: httpProbe('/ready', port, 5),
  }
  return [
    deployment(NAMES.serve, 'serve', options.serveReplicas, orchPod(config, options, checksum, container), options),
    service(NAMES.serve, 'serve', port, options),
  ]
}

interface Bounds {
  min: number
  max: number
}

/** The autoscaler's bounds from resource_management; --instances must lie within them. */
function workerBounds(config: OrchConfig, options: ManifestOptions): Bounds {
  const r = config.infrastructure_system.resource_management
  // An HPA needs at least one replica; KEDA scales to zero on the queue trigger.
  const min = options.keda ? r.min_agent_runners : Math.max(1, r.min_agent_runners)
  const max = r.max_agent_runners
  const key = 'infrastructure_system.resource_management'
  if (options.instances > max) {
    throw new UsageError(`--instances ${options.instances} is above ${key}.max_agent_runners (${max}), the autoscaler's maximum`, {
      hint: `ask for at most ${max}, or raise max_agent_runners in the config`,
    })
  }
  if (options.instances < min) {
    throw new UsageError(`--instances ${options.instances} is below ${key}.min_agent_runners (${min}), the autoscaler's minimum`, {
      hint: `ask for at least ${min}, or lower min_agent_runners in the config`,
    })
  }
  return { min, max }
}

function hpa(config: OrchConfig, options: ManifestOptions, bounds: Bounds): Obj {
  return {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: meta(NAMES.worker, 'worker', options),
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: NAMES.worker },
      minReplicas: bounds.min,
      maxReplicas: bounds.max,
      metrics: [
        {
          type: 'Resource',
          resource: {
            name: 'cpu',
            target: { type: 'Utilization', averageUtilization: config.infrastructure_system.resource_management.cpu_threshold_percent },
          },
        },
      ],
    },
  }
}

/** Where KEDA's operator (in its own namespace) reaches the Redis, and how. */
function kedaRedis(config: OrchConfig, options: ManifestOptions): Obj {
  if (options.withRedis) return { address: `${NAMES.redis}.${options.namespace}.svc.cluster.local:6379` }
  const url = new URL(externalRedisUrl(config))
  const db = url.pathname.replace('/', '')
  return {
    address: `${url.hostname}:${url.port || '6379'}`,
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(db ? { databaseIndex: db } : {}),
    ...(url.protocol === 'rediss:' ? { enableTLS: 'true' } : {}),
  }
}

/**
 * KEDA's `redis` scaler reads the length of `listName` by its type (LLEN, or ZCARD for a sorted set, as the
 * queue's `<prefix>:ready` is: the due tasks). Its target is agent_runner_concurrency due tasks per worker,
 * one full round of claims; a cpu trigger at cpu_threshold_percent keeps the HPA's behaviour beside it.
 */
function kedaObjects(config: OrchConfig, options: ManifestOptions, bounds: Bounds): Obj[] {
  const d = config.infrastructure_system.distributed_simulation
  const password = d.redis_password_env !== ''
  const scaled = {
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'ScaledObject',
    metadata: meta(NAMES.worker, 'worker', options),
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: NAMES.worker },
      minReplicaCount: bounds.min,
      maxReplicaCount: bounds.max,
      triggers: [
        {
          type: 'redis',
          metadata: { ...kedaRedis(config, options), listName: `${d.redis_prefix}:ready`, listLength: String(d.agent_runner_concurrency) },
          ...(password ? { authenticationRef: { name: NAMES.redisAuth } } : {}),
        },
        {
          type: 'cpu',
          metricType: 'Utilization',
          metadata: { value: String(config.infrastructure_system.resource_management.cpu_threshold_percent) },
        },
      ],
    },
  }
  if (!password) return [scaled]
  const auth = {
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'TriggerAuthentication',
    metadata: meta(NAMES.redisAuth, 'worker', options),
    spec: { secretTargetRef: [{ parameter: 'password', name: SECRET_NAME, key: d.redis_password_env }] },
  }
  return [auth, scaled]
}

function workerObjects(config: OrchConfig, options: ManifestOptions, checksum: string): Obj[] {
  const bounds = workerBounds(config, options)
  // A worker has no HTTP port: Kubernetes restarts it when it exits; it reconnects to Redis by itself.
  const container = {
    name: 'worker',
    args: ['worker', '--config', CONFIG_MOUNT],
    env: secretEnv(secretVars(config).filter((v) => v.workers)),
  }
  const worker = deployment(NAMES.worker, 'worker', options.instances, orchPod(config, options, checksum, container), options)
  return [worker, ...(options.keda ? kedaObjects(config, options, bounds) : [hpa(config, options, bounds)])]
}

function yamlDocs(header: string[], objects: Obj[]): string {
  const body = objects.map((o) => manifestYaml(o)).join('---\n')
  return `${header.map((line) => `# ${line}`).join('\n')}\n${body}`
}

function secretTemplate(config: OrchConfig, options: ManifestOptions): string {
  const vars = secretVars(config)
  const literals = vars.map((v) => `#     --from-literal=${v.name}=… \\`)
  const lines = [
    `# The Secret the manifests under k8s/ refer to (${SECRET_NAME}); they hold no secret themselves.`,
    '# Create it before applying them, with values of your own:',
    '#',
    `#   kubectl create secret generic ${SECRET_NAME} --namespace ${options.namespace} \\`,
    ...literals,
    '#',
    '# or from a manifest you keep out of version control:',
    '#',
    '# apiVersion: v1',
    '# kind: Secret',
    '# metadata:',
    `#   name: ${SECRET_NAME}`,
    `#   namespace: ${options.namespace}`,
    '# type: Opaque',
    '# stringData:',
    ...vars.map((v) => `#   ${v.name}: ""   # ${v.what}`),
  ]
  // The last literal line has no continuation.
  const last = lines.indexOf(literals[literals.length - 1] as string)
  lines[last] = (lines[last] as string).replace(/ \\$/, '')
  return `${lines.join('\n')}\n`
}

export function renderKubernetes(config: OrchConfig, options: ManifestOptions): ManifestFile[] {
  const at = addresses(config, options)
  const orchYaml = renderContainerConfig(config, at)
  const checksum = createHash('sha256').update(orchYaml).digest('hex')
  const made = `made by \`orch scale manifests\` (orch ${options.version}); docs/scaling.md#deployment-layouts`
  const files: ManifestFile[] = [
    {
      path: 'k8s/configmap.yaml',
      content: yamlDocs(
        ['The configuration of every orch container, without secrets (they come from the Secret orch-secrets).', made],
        [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: meta(NAMES.config, 'config', options), data: { 'orch.yaml': orchYaml } }],
      ),
    },
    {
      path: 'k8s/serve.yaml',
      content: yamlDocs(
        ['orch serve --no-tasks: the HTTP API; liveness /health, readiness /ready (a backend answers).', made],
        serveObjects(config, options, checksum),
      ),
    },
    {
      path: 'k8s/worker.yaml',
      content: yamlDocs(
        [
          options.keda
            ? `orch worker × ${options.instances}, scaled by KEDA on the due tasks in Redis (${config.infrastructure_system.distributed_simulation.redis_prefix}:ready) and on CPU.`
            : `orch worker × ${options.instances}, scaled on CPU by a HorizontalPodAutoscaler.`,
          made,
        ],
        workerObjects(config, options, checksum),
      ),
    },
  ]
  if (movedBackends(config).length > 0) {
    const hardware = recommendHardware(ollamaConcurrency(config))
    const tier = hardware.tier ?? hardware.split?.tier
    files.push({
      path: 'k8s/ollama.yaml',
      content: yamlDocs(
        [
          `Ollama for the backends that were on the loopback: one replica per worker, sized by orch's hardware table for concurrency ${hardware.split?.concurrency ?? hardware.concurrency}.`,
          `The table also asks for ${tier?.vramGb ?? 8} GB of GPU memory: on a GPU node pool add \`nvidia.com/gpu: 1\` under resources.limits.`,
          'Models live in an emptyDir: pull them in each pod (kubectl exec deploy/orch-ollama -- ollama pull MODEL), or mount a volume.',
          made,
        ],
        ollamaObjects(config, options),
      ),
    })
  }
  if (options.withRedis) {
    files.push({
      path: 'k8s/redis.yaml',
      content: yamlDocs(
        ['Redis for the cluster: append-only (everysec), no eviction, a 10 GiB volume (docs/scaling.md#durability).', made],
        redisObjects(config, options),
      ),
    })
  }
  if (monitoringEnabled(config)) {
    files.push({
      path: 'k8s/monitoring.yaml',
      content: yamlDocs(
        [
          `Prometheus scraping orch serve (${MONITORING_NAMES.prometheus}:${PROMETHEUS_PORT}), Grafana provisioned with it and orch's dashboard (${MONITORING_NAMES.grafana}:${GRAFANA_PORT}).`,
          'Both keep their data in an emptyDir: mount volumes to keep them across restarts. Grafana asks for a new admin password at the first login (admin/admin).',
          made,
        ],
        monitoringObjects(config, options, made),
      ),
    })
  }
  files.push({ path: 'secrets.example.yaml', content: secretTemplate(config, options) })
  return files
}
