/**
 * What the orch pods of the Kubernetes layout lean on: Ollama for the backends that were on this machine's
 * loopback, sized by orch's hardware table (src/capacity/plan.ts), and with --with-redis a Redis StatefulSet.
 */
import { recommendHardware } from '../capacity/plan.ts'
import type { OrchConfig } from '../config/schema.ts'
import { OLLAMA_PORT, ollamaConcurrency } from './manifests-config.ts'
import { deployment, meta, NAMES, type Obj, secretEnv, selectorLabels, service } from './manifests-k8s-objects.ts'
import type { ManifestOptions } from './manifests-types.ts'

const REDIS_RESOURCES = { requests: { cpu: '250m', memory: '512Mi' }, limits: { memory: '2Gi' } }
/** Below the container's memory limit, so that a full Redis refuses writes instead of being killed. */
const REDIS_MAXMEMORY = '1536mb'

/** "4-8" cores → request 4, limit 8. */
function coreRange(cores: string): { request: string; limit: string } {
  const [low, high] = cores.split('-')
  return { request: low as string, limit: high ?? (low as string) }
}

export function ollamaObjects(config: OrchConfig, options: ManifestOptions): Obj[] {
  const hardware = recommendHardware(ollamaConcurrency(config))
  const tier = hardware.tier ?? hardware.split?.tier
  const perWorker = hardware.split?.parts ?? 1
  const cores = coreRange(tier?.cpuCores ?? '4-8')
  const memory = `${tier?.ramGb ?? 16}Gi`
  const probe = { httpGet: { path: '/api/version', port: OLLAMA_PORT }, periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 3 }
  const template = {
    metadata: { labels: selectorLabels('ollama') },
    spec: {
      containers: [
        {
          name: 'ollama',
          image: 'ollama/ollama',
          ports: [{ name: 'ollama', containerPort: OLLAMA_PORT }],
          env: [{ name: 'OLLAMA_HOST', value: `0.0.0.0:${OLLAMA_PORT}` }],
          resources: { requests: { cpu: cores.request, memory }, limits: { cpu: cores.limit, memory } },
          readinessProbe: probe,
          livenessProbe: { ...probe, initialDelaySeconds: 10 },
          volumeMounts: [{ name: 'models', mountPath: '/root/.ollama' }],
        },
      ],
      volumes: [{ name: 'models', emptyDir: {} }],
    },
  }
  return [
    deployment(NAMES.ollama, 'ollama', options.instances * perWorker, template, options),
    service(NAMES.ollama, 'ollama', OLLAMA_PORT, options),
  ]
}

export function redisObjects(config: OrchConfig, options: ManifestOptions): Obj[] {
  const passwordVar = config.infrastructure_system.distributed_simulation.redis_password_env
  const args = ['redis-server', '--appendonly', 'yes', '--appendfsync', 'everysec', '--maxmemory-policy', 'noeviction']
  args.push('--maxmemory', REDIS_MAXMEMORY)
  // Kubernetes expands $(VAR) in args from the container's environment.
  if (passwordVar !== '') args.push('--requirepass', `$(${passwordVar})`)
  const ping = passwordVar !== '' ? `REDISCLI_AUTH="$${passwordVar}" redis-cli ping | grep -q PONG` : 'redis-cli ping | grep -q PONG'
  const probe = { exec: { command: ['sh', '-c', ping] }, periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 3 }
  const statefulSet = {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: meta(NAMES.redis, 'redis', options),
    spec: {
      serviceName: NAMES.redis,
      replicas: 1,
      selector: { matchLabels: selectorLabels('redis') },
      template: {
        metadata: { labels: selectorLabels('redis') },
        spec: {
          securityContext: { runAsNonRoot: true, runAsUser: 999, runAsGroup: 999, fsGroup: 999 },
          containers: [
            {
              name: 'redis',
              image: 'redis:7',
              args,
              ports: [{ name: 'redis', containerPort: 6379 }],
              ...(passwordVar !== '' ? { env: secretEnv([{ name: passwordVar, what: '', workers: true }]) } : {}),
              resources: REDIS_RESOURCES,
              readinessProbe: probe,
              livenessProbe: { ...probe, initialDelaySeconds: 10 },
              volumeMounts: [{ name: 'data', mountPath: '/data' }],
            },
          ],
        },
      },
      volumeClaimTemplates: [
        { metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '10Gi' } } } },
      ],
    },
  }
  return [statefulSet, service(NAMES.redis, 'redis', 6379, options)]
}
