/**
 * The orch.yaml the containers of a deployment read: the resolved config with the cluster's settings put
 * in (the Redis bus, the serve's listen address and host names, backends at the Ollama service), without
 * what a container cannot use (pools of local processes) and without any secret. Secrets reach the
 * containers as environment variables, named here and filled from an env file or a Kubernetes Secret.
 */
import YAML from 'yaml'
import { docPath } from '../config/keys.ts'
import { isPlainObject, type PathSegment } from '../config/paths.ts'
import type { OrchConfig } from '../config/schema.ts'
import { isUnavailable } from '../config/unavailable.ts'
import { UsageError } from '../core/errors.ts'

/** Where the containers find each other. */
export interface ClusterAddresses {
  /** `redis://host:port[/db]` the containers use. */
  redisUrl: string
  /** Base URL of the Ollama service, for the backends that were on this machine's loopback. */
  ollamaUrl: string
  /** Host names clients use to reach the serve (its service names), accepted in Host headers. */
  serveHosts: string[]
  /** The deployment's Prometheus, for `orch doctor` in a container (with grafana_prometheus.enabled). */
  prometheusUrl: string
}

export interface SecretVar {
  name: string
  /** What the variable holds, for the env file and Secret templates. */
  what: string
  /** Whether the workers need it too (the serve gets every one). */
  workers: boolean
}

/** The variable the serve's bearer token comes from (server.token never goes into a file). */
export const SERVER_TOKEN_VAR = 'ORCH_SERVER_TOKEN'
/** Where the config is mounted in every orch container. */
export const CONFIG_MOUNT = '/etc/orch/orch.yaml'
/** The image's working directory: the state directory (./.orch) and relative paths of the config land here. */
export const STATE_DIR = '/var/lib/orch'
export const OLLAMA_PORT = 11434

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1', '0.0.0.0'])

export function isLoopbackUrl(url: string): boolean {
  const parsed = URL.parse(url)
  if (!parsed) return false
  const host = parsed.hostname.toLowerCase()
  return LOOPBACK_HOSTS.has(host) || /^127\./.test(host) || host.endsWith('.localhost')
}

/** The backends a container can reach only through the Ollama service: Ollama backends on the loopback. */
export function movedBackends(config: OrchConfig): OrchConfig['backends'] {
  return config.backends.filter((b) => b.type === 'ollama' && isLoopbackUrl(b.url))
}

/** The concurrency the Ollama service is sized for: the largest of the moved backends' limits. */
export function ollamaConcurrency(config: OrchConfig): number {
  const fallback = config.runtime.ollama?.concurrency ?? 2
  return Math.max(1, ...movedBackends(config).map((b) => b.concurrency ?? fallback))
}

/** The Redis URL the config names (redis_url, else redis_host:redis_port). */
export function configuredRedisUrl(config: OrchConfig): string {
  const d = config.infrastructure_system.distributed_simulation
  if (d.redis_url !== '') return d.redis_url
  const host = d.redis_host.includes(':') && !d.redis_host.startsWith('[') ? `[${d.redis_host}]` : d.redis_host
  return `redis://${host}:${d.redis_port}`
}

/** The Redis URL of a cluster that brings no Redis of its own: the config's, which must not be a loopback one. */
export function externalRedisUrl(config: OrchConfig): string {
  const url = configuredRedisUrl(config)
  if (isLoopbackUrl(url)) {
    throw new UsageError(`the config's Redis (${url}) is this machine's loopback, which no pod reaches`, {
      hint: 'set infrastructure_system.distributed_simulation.redis_url to a Redis the cluster reaches, or pass --with-redis for one in the cluster',
    })
  }
  return url
}

/** The environment variables holding secrets: the serve's token, the Redis password, the backends' API keys. */
export function secretVars(config: OrchConfig): SecretVar[] {
  const vars: SecretVar[] = [
    { name: SERVER_TOKEN_VAR, what: 'bearer token clients send to orch serve, at least 16 random characters', workers: false },
  ]
  const redis = config.infrastructure_system.distributed_simulation.redis_password_env
  if (redis !== '') vars.push({ name: redis, what: 'password of the Redis', workers: true })
  for (const b of config.backends) {
    if (b.api_key_env && !vars.some((v) => v.name === b.api_key_env)) {
      vars.push({ name: b.api_key_env, what: `API key of the backend "${b.name}"`, workers: true })
    }
  }
  return vars
}

/** What the generated config leaves behind or cannot fix, for the command to say. */
export function manifestWarnings(config: OrchConfig): string[] {
  const warnings: string[] = []
  if (config.pools.length > 0) {
    warnings.push(
      `pools (${config.pools.map((p) => p.name).join(', ')}) are left out of the containers' config: their model servers are processes of this machine; the Ollama service takes their place`,
    )
  }
  for (const b of config.backends) {
    if (b.type !== 'ollama' && isLoopbackUrl(b.url)) {
      warnings.push(
        `backend "${b.name}" (${b.url}) is on this machine's loopback, which no container reaches: point its url at a reachable server`,
      )
    }
  }
  return warnings
}

/** Keys whose value this version refuses when a file sets them (defaults are never refused, a file's are). */
function dropUnavailable(node: unknown, segments: PathSegment[]): void {
  if (Array.isArray(node)) {
    node.forEach((item, i) => {
      dropUnavailable(item, [...segments, i])
    })
    return
  }
  if (!isPlainObject(node)) return
  for (const [key, value] of Object.entries(node)) {
    const at = [...segments, key]
    if (isUnavailable(docPath(at), value)) delete node[key]
    else dropUnavailable(value, at)
    if (isPlainObject(node[key]) && Object.keys(node[key] as object).length === 0) delete node[key]
  }
}

/** The containers' config, as an object (tests resolve it again through orch's own resolver). */
export function containerConfig(config: OrchConfig, at: ClusterAddresses): Record<string, unknown> {
  const out = structuredClone(config) as OrchConfig
  delete out.server.token
  out.server.host = '0.0.0.0'
  out.server.allowed_hosts = [...new Set([...config.server.allowed_hosts, ...at.serveHosts])]
  out.infrastructure_system.enabled = true
  const d = out.infrastructure_system.distributed_simulation
  d.enabled = true
  d.event_bus_type = 'redis'
  d.redis_url = at.redisUrl
  out.pools = []
  const moved = new Set(movedBackends(config).map((b) => b.name))
  out.backends = out.backends.map((b) => (moved.has(b.name) ? { ...b, url: at.ollamaUrl } : b))
  const prometheus = out.infrastructure_system.performance_monitoring.integrations.grafana_prometheus
  if (prometheus.enabled) prometheus.endpoint = at.prometheusUrl
  dropUnavailable(out, [])
  return out as unknown as Record<string, unknown>
}

/**
 * YAML for compose and Kubernetes: strings that YAML 1.1 readers (Kubernetes' own) would take for booleans
 * or numbers (`yes`, `on`, `1:30`) quoted, no anchors, no folded lines.
 */
export function manifestYaml(value: unknown): string {
  return YAML.stringify(value, { version: '1.1', lineWidth: 0, aliasDuplicateObjects: false })
}

export function renderContainerConfig(config: OrchConfig, at: ClusterAddresses): string {
  const secrets = secretVars(config)
    .map((v) => v.name)
    .join(', ')
  const header = [
    '# The configuration of every orch container of this deployment, made by `orch scale manifests` from the',
    '# resolved config. No secret is in it: the containers get them as environment variables',
    `# (${secrets}). Reference: docs/configuration.md; layout: docs/scaling.md#deployment-layouts`,
  ].join('\n')
  return `${header}\n${YAML.stringify(containerConfig(config, at), { lineWidth: 0, aliasDuplicateObjects: false })}`
}
