import { describe, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as v from 'valibot'
import YAML from 'yaml'
import { BUNDLE } from '../../scripts/build.ts'
import { resolveConfig } from '../../src/config/load.ts'
import { type OrchConfig, type OrchConfigInput, OrchConfigSchema } from '../../src/config/schema.ts'
import { ExitCode, UsageError } from '../../src/core/errors.ts'
import { type ManifestFile, type ManifestOptions, parseManifestFlags, renderManifests } from '../../src/scale/manifests.ts'
import { ROOT, tempDir } from '../helpers/cli.ts'
import { composeProblems, kubernetesDocuments, kubernetesProblem } from '../helpers/manifest-schemas.ts'

const VERSION = '9.8.7'
const TOKEN = 'a-token-of-the-test-0123456789'
const config = (input: OrchConfigInput = {}): OrchConfig => v.parse(OrchConfigSchema, input)
const options = (flags: Parameters<typeof parseManifestFlags>[0]): ManifestOptions => parseManifestFlags(flags, VERSION)

const file = (files: ManifestFile[], path: string): string => {
  const found = files.find((f) => f.path === path)
  if (!found) throw new Error(`no ${path} among ${files.map((f) => f.path).join(', ')}`)
  return found.content
}
const compose = (files: ManifestFile[]) => YAML.parse(file(files, 'compose.yaml'))
const k8sObjects = (files: ManifestFile[]) => files.filter((f) => f.path.startsWith('k8s/')).flatMap((f) => kubernetesDocuments(f.content))
const find = (objects: any[], kind: string, name: string) => {
  const found = objects.find((o) => o.kind === kind && o.metadata?.name === name)
  if (!found) throw new Error(`no ${kind} ${name}`)
  return found
}

/** The usage error a call throws (fails the test when it throws nothing, or something else). */
function usageError(call: () => unknown): UsageError {
  try {
    call()
  } catch (error) {
    if (error instanceof UsageError) return error
    throw error
  }
  throw new Error('expected a UsageError')
}

/** A config as a user would write it: a token, a Redis password variable, an Ollama here and a cloud backend. */
const userConfig = () =>
  config({
    server: { token: TOKEN, port: 9111, allowed_hosts: ['orch.example'] },
    infrastructure_system: { distributed_simulation: { redis_url: 'redis://redis.internal:6380/2', redis_prefix: 'prod' } },
    backends: [
      { name: 'local', url: 'http://127.0.0.1:11434', concurrency: 4 },
      { name: 'cloud', type: 'openai', url: 'https://api.example.com/v1', api_key_env: 'CLOUD_KEY' },
    ],
  })

describe('the flags', () => {
  test('a bad --format or --instances is a usage error (exit 2) naming the flag and what was given', () => {
    for (const [flags, message] of [
      [{ format: 'helm', instances: '3' }, '--format: expected compose or k8s, got "helm"'],
      [{ instances: '3' }, '--format: required'],
      [{ format: 'k8s' }, '--instances: required'],
      [{ format: 'k8s', instances: '0' }, '--instances: expected a whole number from 1 to 1000, got "0"'],
      [{ format: 'k8s', instances: '-2' }, 'got "-2"'],
      [{ format: 'k8s', instances: '1.5' }, 'got "1.5"'],
      [{ format: 'k8s', instances: 'three' }, 'got "three"'],
      [{ format: 'k8s', instances: '1001' }, 'got "1001"'],
      [{ format: 'k8s', instances: '3', namespace: 'Prod_1' }, '--namespace: expected a Kubernetes namespace'],
      [{ format: 'compose', instances: '3', keda: true }, '--keda: only with --format k8s'],
      [{ format: 'compose', instances: '3', 'with-redis': true }, '--with-redis: only with --format k8s'],
    ] as const) {
      const error = usageError(() => options(flags))
      expect(error.message).toContain(message)
      expect(error.exitCode).toBe(ExitCode.usage)
    }
    expect(options({ format: 'K8S', instances: '1000' })).toMatchObject({ format: 'k8s', instances: 1000, image: `orch:${VERSION}` })
  })
})

describe('docker compose', () => {
  const files = renderManifests(userConfig(), options({ format: 'compose', instances: '3' }))

  test('for --instances 3 the compose file is valid by the Compose Specification schema', () => {
    expect(composeProblems(compose(files))).toEqual([])
    expect(files.map((f) => f.path)).toEqual(['compose.yaml', 'orch.yaml', 'orch.env.example', 'Dockerfile', 'Dockerfile.dockerignore'])
  })

  test('the schema check catches a broken compose file', () => {
    const broken = compose(files)
    broken.services.redis.healthcheck.interval = 5
    expect(composeProblems(broken).join('\n')).toContain('/services/redis/healthcheck/interval: must be string')
    const typo = compose(files)
    typo.services.serve.healthchek = typo.services.serve.healthcheck
    expect(composeProblems(typo).join('\n')).toContain('healthchek')
  })

  test('services: redis (append-only, no eviction), serve, 3 workers, ollama; secrets only as env_file references', () => {
    const c = compose(files)
    expect(Object.keys(c.services).sort()).toEqual(['ollama', 'redis', 'serve', 'worker'])
    const redis = c.services.redis
    expect(redis.image).toBe('redis:7')
    expect(redis.command.join(' ')).toContain('--appendonly yes --appendfsync everysec --maxmemory-policy noeviction')
    expect(redis.command.join(' ')).toContain('--requirepass "$$ORCH_REDIS_PASSWORD"')
    expect(redis.healthcheck.test.join(' ')).toContain('redis-cli ping')
    expect(redis.volumes).toEqual(['redis-data:/data'])
    expect(c.services.serve.command).toEqual([
      'serve',
      '--no-tasks',
      '--host',
      '0.0.0.0',
      '--port',
      '9111',
      '--config',
      '/etc/orch/orch.yaml',
    ])
    expect(c.services.serve.healthcheck.test).toEqual(['CMD', 'curl', '-fsS', 'http://127.0.0.1:9111/health'])
    expect(c.services.serve.ports).toEqual([{ target: 9111, published: '9111', protocol: 'tcp' }])
    expect(c.services.serve.env_file).toEqual(['orch.env'])
    expect(c.services.worker.command).toEqual(['worker', '--config', '/etc/orch/orch.yaml'])
    expect(c.services.worker.deploy.replicas).toBe(3)
    expect(c.services.worker.healthcheck).toEqual({ disable: true })
    expect(c.services.ollama.image).toBe('ollama/ollama')
    expect(c.services.ollama.healthcheck.test).toEqual(['CMD', 'ollama', 'list'])
    expect(Object.keys(c.volumes).sort()).toEqual(['ollama-models', 'orch-state', 'redis-data'])
    expect(c.services.serve.configs).toEqual([{ source: 'orch_config', target: '/etc/orch/orch.yaml' }])
    expect(c.configs.orch_config.file).toBe('./orch.yaml')
    const env = file(files, 'orch.env.example')
    for (const name of ['ORCH_SERVER_TOKEN=', 'ORCH_REDIS_PASSWORD=', 'CLOUD_KEY=']) expect(env).toContain(`\n${name}\n`)
  })

  test('orch.yaml: the resolved config on the Redis bus, backends at the Ollama service, no secret; orch reads it back', () => {
    const text = file(files, 'orch.yaml')
    for (const f of files) expect(f.content).not.toContain(TOKEN)
    const dir = tempDir('orch-manifests-')
    try {
      writeFileSync(join(dir.path, 'orch.yaml'), text)
      const { config: read } = resolveConfig({ cwd: dir.path, env: { ORCH_SERVER_TOKEN: TOKEN } })
      const d = read.infrastructure_system.distributed_simulation
      expect({ enabled: d.enabled, bus: d.event_bus_type, url: d.redis_url, prefix: d.redis_prefix }).toEqual({
        enabled: true,
        bus: 'redis',
        url: 'redis://redis:6379',
        prefix: 'prod',
      })
      expect(read.server).toMatchObject({ host: '0.0.0.0', port: 9111, token: TOKEN, allowed_hosts: ['orch.example', 'serve'] })
      expect(read.backends).toEqual([
        { name: 'local', type: 'ollama', url: 'http://ollama:11434', concurrency: 4 },
        { name: 'cloud', type: 'openai', url: 'https://api.example.com/v1', api_key_env: 'CLOUD_KEY' },
      ])
      expect(read.pools).toEqual([])
    } finally {
      dir.cleanup()
    }
  })

  test('without an Ollama on the loopback there is no ollama service and nothing waits for one', () => {
    const remote = config({ backends: [{ name: 'gpu', url: 'http://10.0.0.5:11434' }] })
    const c = compose(renderManifests(remote, options({ format: 'compose', instances: '1' })))
    expect(c.services.ollama).toBeUndefined()
    expect(Object.keys(c.services.serve.depends_on)).toEqual(['redis'])
    expect(composeProblems(c)).toEqual([])
  })
})

describe('Kubernetes', () => {
  const cfg = userConfig()
  const files = renderManifests(cfg, options({ format: 'k8s', instances: '3', namespace: 'orch' }))
  const objects = k8sObjects(files)

  test('for --instances 3 every object is valid by its official schema (Kubernetes OpenAPI)', () => {
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(
      [
        'ConfigMap/orch-config',
        'Deployment/orch-ollama',
        'Deployment/orch-serve',
        'Deployment/orch-worker',
        'HorizontalPodAutoscaler/orch-worker',
        'Service/orch-ollama',
        'Service/orch-serve',
      ].sort(),
    )
    expect(objects.map(kubernetesProblem).filter(Boolean)).toEqual([])
    expect(objects.every((o) => o.metadata.namespace === 'orch')).toBe(true)
  })

  test('the schema check catches broken objects', () => {
    const worker = structuredClone(find(objects, 'Deployment', 'orch-worker'))
    worker.spec.replicas = '3'
    expect(kubernetesProblem(worker)).toContain('replicas must be integer')
    const hpa = structuredClone(find(objects, 'HorizontalPodAutoscaler', 'orch-worker'))
    delete hpa.spec.maxReplicas
    expect(kubernetesProblem(hpa)).toContain('maxReplicas')
    // A bare `yes` is a boolean to Kubernetes' YAML 1.1 reader: the args of a container must be strings.
    const bare = kubernetesDocuments(
      'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: r}\nspec:\n  selector: {}\n  template:\n    spec:\n      containers: [{name: r, args: [--appendonly, yes]}]\n',
    )
    expect(kubernetesProblem(bare[0])).toContain('args/1 must be string')
  })

  test('workers: 3 replicas, an autoscaling/v2 HPA on CPU with the bounds and threshold of resource_management', () => {
    expect(find(objects, 'Deployment', 'orch-worker').spec.replicas).toBe(3)
    const hpa = find(objects, 'HorizontalPodAutoscaler', 'orch-worker')
    expect(hpa.apiVersion).toBe('autoscaling/v2')
    expect(hpa.spec).toEqual({
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'orch-worker' },
      minReplicas: 1,
      maxReplicas: 10,
      metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 80 } } }],
    })
  })

  test('serve: probes /health and /ready, secrets by secretKeyRef only, the ConfigMap holds the config without them', () => {
    const serve = find(objects, 'Deployment', 'orch-serve').spec.template.spec.containers[0]
    expect(serve.args).toEqual(['serve', '--no-tasks', '--host', '0.0.0.0', '--port', '9111', '--config', '/etc/orch/orch.yaml'])
    expect(serve.livenessProbe.httpGet).toEqual({ path: '/health', port: 9111, httpHeaders: [{ name: 'Host', value: 'localhost' }] })
    expect(serve.readinessProbe.httpGet.path).toBe('/ready')
    expect(serve.env).toEqual(
      ['ORCH_SERVER_TOKEN', 'ORCH_REDIS_PASSWORD', 'CLOUD_KEY'].map((name) => ({
        name,
        valueFrom: { secretKeyRef: { name: 'orch-secrets', key: name } },
      })),
    )
    expect(serve.resources).toEqual({ requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '1', memory: '1Gi' } })
    expect(objects.some((o) => o.kind === 'Secret')).toBe(false)
    for (const f of files) expect(f.content).not.toContain(TOKEN)
    const orchYaml = YAML.parse(find(objects, 'ConfigMap', 'orch-config').data['orch.yaml'])
    expect(orchYaml.server.token).toBeUndefined()
    expect(orchYaml.server.allowed_hosts).toContain('orch-serve.orch.svc.cluster.local')
    expect(orchYaml.infrastructure_system.distributed_simulation.redis_url).toBe('redis://redis.internal:6380/2')
    expect(orchYaml.backends[0].url).toBe('http://orch-ollama:11434')
    expect(
      file(files, 'secrets.example.yaml')
        .split('\n')
        .every((line) => line === '' || line.startsWith('#')),
    ).toBe(true)
  })

  test("Ollama: one replica per worker, resources from the hardware table's row for the backend's concurrency (4: 8-16 cores, 32 GB)", () => {
    const ollama = find(objects, 'Deployment', 'orch-ollama')
    expect(ollama.spec.replicas).toBe(3)
    expect(ollama.spec.template.spec.containers[0].resources).toEqual({
      requests: { cpu: '8', memory: '32Gi' },
      limits: { cpu: '16', memory: '32Gi' },
    })
  })

  test('--keda --with-redis: a ScaledObject on the ready set (zset, read by the redis scaler) and a Redis StatefulSet, all valid', () => {
    const keda = k8sObjects(renderManifests(cfg, options({ format: 'k8s', instances: '3', keda: true, 'with-redis': true })))
    expect(keda.map(kubernetesProblem).filter(Boolean)).toEqual([])
    expect(keda.some((o) => o.kind === 'HorizontalPodAutoscaler')).toBe(false)
    const scaled = find(keda, 'ScaledObject', 'orch-worker')
    expect(scaled.spec).toMatchObject({ minReplicaCount: 1, maxReplicaCount: 10, scaleTargetRef: { name: 'orch-worker' } })
    expect(scaled.spec.triggers[0]).toEqual({
      type: 'redis',
      metadata: { address: 'orch-redis.default.svc.cluster.local:6379', listName: 'prod:ready', listLength: '5' },
      authenticationRef: { name: 'orch-redis-auth' },
    })
    expect(scaled.spec.triggers[1]).toEqual({ type: 'cpu', metricType: 'Utilization', metadata: { value: '80' } })
    expect(find(keda, 'TriggerAuthentication', 'orch-redis-auth').spec.secretTargetRef).toEqual([
      { parameter: 'password', name: 'orch-secrets', key: 'ORCH_REDIS_PASSWORD' },
    ])
    const redis = find(keda, 'StatefulSet', 'orch-redis').spec.template.spec.containers[0]
    expect(redis.args.join(' ')).toContain('--appendonly yes --appendfsync everysec --maxmemory-policy noeviction')
    expect(redis.args.slice(-2)).toEqual(['--requirepass', '$(ORCH_REDIS_PASSWORD)'])
    const orchYaml = YAML.parse(find(keda, 'ConfigMap', 'orch-config').data['orch.yaml'])
    expect(orchYaml.infrastructure_system.distributed_simulation.redis_url).toBe('redis://orch-redis:6379')
  })

  test('KEDA reaches an external Redis by its URL: database, user and TLS included', () => {
    const tls = config({ infrastructure_system: { distributed_simulation: { redis_url: 'rediss://orch@redis.example:6390/3' } } })
    const scaled = find(
      k8sObjects(renderManifests(tls, options({ format: 'k8s', instances: '2', keda: true }))),
      'ScaledObject',
      'orch-worker',
    )
    expect(scaled.spec.triggers[0].metadata).toEqual({
      address: 'redis.example:6390',
      username: 'orch',
      databaseIndex: '3',
      enableTLS: 'true',
      listName: 'orch:ready',
      listLength: '5',
    })
  })

  test("refusals: a loopback Redis without --with-redis, --instances outside the autoscaler's bounds", () => {
    expect(usageError(() => renderManifests(config(), options({ format: 'k8s', instances: '2' }))).message).toContain(
      "the config's Redis (redis://localhost:6379) is this machine's loopback",
    )
    const bounded = config({
      infrastructure_system: {
        distributed_simulation: { redis_url: 'redis://r:6379' },
        resource_management: { min_agent_runners: 2, max_agent_runners: 4 },
      },
    })
    expect(usageError(() => renderManifests(bounded, options({ format: 'k8s', instances: '5' }))).message).toContain(
      'above infrastructure_system.resource_management.max_agent_runners (4)',
    )
    expect(usageError(() => renderManifests(bounded, options({ format: 'k8s', instances: '1' }))).message).toContain(
      'below infrastructure_system.resource_management.min_agent_runners (2)',
    )
    const hpa = find(
      k8sObjects(renderManifests(bounded, options({ format: 'k8s', instances: '3' }))),
      'HorizontalPodAutoscaler',
      'orch-worker',
    )
    expect(hpa.spec).toMatchObject({ minReplicas: 2, maxReplicas: 4 })
  })
})

describe('the binary', () => {
  test('the validation packages are not in dist/orch: the scale command is, without ajv nor kubernetes-models', async () => {
    const result = await Bun.build({ ...BUNDLE, entrypoints: BUNDLE.entrypoints.map((e) => join(ROOT, e)), metafile: true })
    expect(result.success).toBe(true)
    const inputs = Object.keys((result.metafile as unknown as { inputs: Record<string, unknown> }).inputs)
    expect(inputs.some((i) => i.endsWith('src/scale/manifests-k8s.ts'))).toBe(true)
    expect(inputs.filter((i) => /node_modules\/(ajv|kubernetes-models|@kubernetes-models)\//.test(i))).toEqual([])
  })
})
