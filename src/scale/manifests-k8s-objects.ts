/** The Kubernetes objects' common parts (./manifests-k8s.ts): names, labels, Deployments, Services, secret references. */
import type { SecretVar } from './manifests-config.ts'
import type { ManifestOptions } from './manifests-types.ts'

export const SECRET_NAME = 'orch-secrets'
export const NAMES = {
  config: 'orch-config',
  serve: 'orch-serve',
  worker: 'orch-worker',
  ollama: 'orch-ollama',
  redis: 'orch-redis',
  redisAuth: 'orch-redis-auth',
} as const

export type Obj = Record<string, unknown>

export const selectorLabels = (component: string) => ({ 'app.kubernetes.io/name': 'orch', 'app.kubernetes.io/component': component })

export function meta(name: string, component: string, options: ManifestOptions): Obj {
  return {
    name,
    namespace: options.namespace,
    labels: { ...selectorLabels(component), 'app.kubernetes.io/version': options.version, 'app.kubernetes.io/part-of': 'orch' },
  }
}

export function secretEnv(vars: SecretVar[]): Obj[] {
  return vars.map((v) => ({ name: v.name, valueFrom: { secretKeyRef: { name: SECRET_NAME, key: v.name } } }))
}

export function deployment(name: string, component: string, replicas: number, template: Obj, options: ManifestOptions): Obj {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(name, component, options),
    spec: { replicas, selector: { matchLabels: selectorLabels(component) }, template },
  }
}

export function service(name: string, component: string, port: number, options: ManifestOptions): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(name, component, options),
    spec: { selector: selectorLabels(component), ports: [{ name: component === 'serve' ? 'http' : component, port, targetPort: port }] },
  }
}
