/**
 * The docker-compose layout: services redis, serve, worker (× --instances), ollama (when a backend was an
 * Ollama on this machine's loopback), their volumes, and the containers' orch.yaml as a compose config.
 * Secrets come from orch.env (made from orch.env.example), never from a file compose or orch reads as config.
 */
import type { OrchConfig } from '../config/schema.ts'
import {
  type ClusterAddresses,
  CONFIG_MOUNT,
  manifestYaml,
  movedBackends,
  OLLAMA_PORT,
  renderContainerConfig,
  type SecretVar,
  STATE_DIR,
  secretVars,
} from './manifests-config.ts'
import { composeMonitoring, GRAFANA_PORT, monitoringEnabled, PROMETHEUS_PORT } from './manifests-monitoring.ts'
import type { ManifestFile, ManifestOptions } from './manifests-types.ts'

const ENV_FILE = 'orch.env'
export const COMPOSE_ADDRESSES: ClusterAddresses = {
  redisUrl: 'redis://redis:6379',
  ollamaUrl: `http://ollama:${OLLAMA_PORT}`,
  serveHosts: ['serve'],
  prometheusUrl: `http://prometheus:${PROMETHEUS_PORT}`,
}

const REDIS_FLAGS = '--appendonly yes --appendfsync everysec --maxmemory-policy noeviction'

/** Seconds compose waits after SIGTERM: the drain of tasks in flight, and a little more. */
export function stopGraceSeconds(config: OrchConfig): number {
  return Math.ceil(config.graceful_shutdown_timeout_ms / 1000) + 5
}

function redisService(passwordVar: string | undefined) {
  // The password comes from the env file; `$$` is a literal `$` for compose, so the shell of the container
  // expands it. docker-entrypoint.sh then drops to the redis user as it does for a plain redis-server.
  const command = passwordVar
    ? ['sh', '-c', `exec docker-entrypoint.sh redis-server ${REDIS_FLAGS} --requirepass "$$${passwordVar}"`]
    : ['redis-server', ...REDIS_FLAGS.split(' ')]
  const ping = passwordVar
    ? `if [ -n "$$${passwordVar}" ]; then export REDISCLI_AUTH="$$${passwordVar}"; fi; redis-cli ping | grep -q PONG`
    : 'redis-cli ping | grep -q PONG'
  return {
    image: 'redis:7',
    command,
    ...(passwordVar ? { env_file: [ENV_FILE] } : {}),
    volumes: ['redis-data:/data'],
    healthcheck: { test: ['CMD-SHELL', ping], interval: '5s', timeout: '3s', retries: 10 },
    restart: 'unless-stopped',
  }
}

function dependsOn(withOllama: boolean) {
  return {
    redis: { condition: 'service_healthy' },
    ...(withOllama ? { ollama: { condition: 'service_healthy' } } : {}),
  }
}

function orchService(options: ManifestOptions, config: OrchConfig, command: string[], withOllama: boolean) {
  return {
    image: options.image,
    command,
    env_file: [ENV_FILE],
    configs: [{ source: 'orch_config', target: CONFIG_MOUNT }],
    depends_on: dependsOn(withOllama),
    stop_grace_period: `${stopGraceSeconds(config)}s`,
    restart: 'unless-stopped',
  }
}

export function renderCompose(config: OrchConfig, options: ManifestOptions): ManifestFile[] {
  const port = config.server.port
  const withOllama = movedBackends(config).length > 0
  const secrets = secretVars(config)
  const redisPassword = secrets.find((v) => v.name === config.infrastructure_system.distributed_simulation.redis_password_env)
  const services: Record<string, unknown> = {
    redis: redisService(redisPassword?.name),
    serve: {
      ...orchService(
        options,
        config,
        ['serve', '--no-tasks', '--host', '0.0.0.0', '--port', String(port), '--config', CONFIG_MOUNT],
        withOllama,
      ),
      ports: [{ target: port, published: String(port), protocol: 'tcp' }],
      volumes: [`orch-state:${STATE_DIR}`],
      healthcheck: {
        test: ['CMD', 'curl', '-fsS', `http://127.0.0.1:${port}/health`],
        interval: '10s',
        timeout: '3s',
        retries: 3,
        start_period: '10s',
      },
    },
    worker: {
      ...orchService(options, config, ['worker', '--config', CONFIG_MOUNT], withOllama),
      // A worker has no HTTP port: the image's check is for orch serve.
      healthcheck: { disable: true },
      deploy: { replicas: options.instances },
    },
  }
  const volumes: Record<string, unknown> = { 'redis-data': {}, 'orch-state': {} }
  if (withOllama) {
    services.ollama = {
      image: 'ollama/ollama',
      volumes: ['ollama-models:/root/.ollama'],
      healthcheck: { test: ['CMD', 'ollama', 'list'], interval: '10s', timeout: '5s', retries: 5, start_period: '10s' },
      restart: 'unless-stopped',
    }
    volumes['ollama-models'] = {}
  }
  const configs: Record<string, unknown> = { orch_config: { file: './orch.yaml' } }
  const monitoring = monitoringEnabled(config) ? composeMonitoring(config, options.version, ENV_FILE) : undefined
  if (monitoring) {
    Object.assign(services, monitoring.services)
    Object.assign(volumes, monitoring.volumes)
    Object.assign(configs, monitoring.configs)
  }
  const compose = { name: 'orch', services, volumes, configs }
  const header = [
    `# orch as a cluster on one Docker host: one serve, ${options.instances} worker${options.instances === 1 ? '' : 's'}, Redis${withOllama ? ', Ollama' : ''}${monitoring ? ', Prometheus, Grafana' : ''}.`,
    `# Made by \`orch scale manifests\` (orch ${options.version}); docs/scaling.md#deployment-layouts`,
    `# First: cp orch.env.example ${ENV_FILE} and fill it in; build the image (see Dockerfile); then docker compose up -d`,
    ...(monitoring
      ? [
          `# Prometheus on :${PROMETHEUS_PORT}; Grafana on :${GRAFANA_PORT} with orch's dashboard (first login admin/admin, then a new password)`,
        ]
      : []),
  ].join('\n')
  return [
    { path: 'compose.yaml', content: `${header}\n${manifestYaml(compose)}` },
    { path: 'orch.yaml', content: renderContainerConfig(config, COMPOSE_ADDRESSES) },
    { path: 'orch.env.example', content: envExample(secrets) },
    ...(monitoring?.files ?? []),
  ]
}

function envExample(secrets: SecretVar[]): string {
  const lines = [
    `# The secrets of the deployment: copy this file to ${ENV_FILE}, fill in every value, and keep ${ENV_FILE} out of`,
    '# version control. compose hands these variables to the containers; no config file holds them.',
  ]
  for (const v of secrets) lines.push('', `# ${v.what}`, `${v.name}=`)
  return `${lines.join('\n')}\n`
}
