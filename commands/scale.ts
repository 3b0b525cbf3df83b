/**
 * `orch scale`: deployment manifests for a cluster (`manifests`, from the resolved config), and the
 * autoscaler of a running orch serve (`status`, `set`; ./_scale.ts). docs/scaling.md.
 */
import { resolve } from 'node:path'
import pkg from '../package.json' with { type: 'json' }
import { displayPath } from '../src/config/load.ts'
import { logger } from '../src/core/log.ts'
import { joinManifests, MAX_INSTANCES, parseManifestFlags, renderManifests } from '../src/scale/manifests.ts'
import { manifestWarnings } from '../src/scale/manifests-config.ts'
import { writeManifests } from '../src/scale/manifests-write.ts'
import { defineOrchCommand, globalArgs, printJson, printText } from './_args.ts'
import { loadConfig } from './_config.ts'
import { scaleControl } from './_scale.ts'

const manifests = defineOrchCommand({
  meta: {
    name: 'manifests',
    description:
      'docker-compose or Kubernetes files for a cluster (serve, workers, Redis, Ollama; Prometheus and Grafana with grafana_prometheus.enabled) from the resolved config, and a Dockerfile',
  },
  args: {
    ...globalArgs,
    format: { type: 'string', valueHint: 'FORMAT', description: 'compose (compose.yaml) or k8s (k8s/*.yaml) (required)' },
    instances: { type: 'string', valueHint: 'N', description: `Workers (orch worker replicas), 1 to ${MAX_INSTANCES} (required)` },
    out: { type: 'string', valueHint: 'DIR', description: 'Write the files under DIR (default: print them)' },
    force: { type: 'boolean', description: 'With --out: overwrite files that exist' },
    image: {
      type: 'string',
      valueHint: 'IMAGE',
      description: `The orch image (default orch:${pkg.version}; build it with the Dockerfile)`,
    },
    'serve-replicas': { type: 'string', valueHint: 'N', description: 'k8s: replicas of the serve Deployment (default 1)' },
    namespace: { type: 'string', valueHint: 'NS', description: 'k8s: namespace of every object (default "default")' },
    keda: {
      type: 'boolean',
      description: 'k8s: scale the workers with a KEDA ScaledObject on the due tasks in Redis, instead of a CPU HorizontalPodAutoscaler',
    },
    'with-redis': { type: 'boolean', description: 'k8s: run Redis in the cluster (a StatefulSet); else redis_url of the config' },
  },
  examples: [
    'orch scale manifests --format compose --instances 3 --out deploy/',
    'orch scale manifests --format k8s --instances 3 --keda --with-redis --image registry.example/orch:0.1.0 --out deploy/',
    'orch scale manifests --format k8s --instances 2 --config cluster.yaml   # print every file',
  ],
  run({ args }) {
    const options = parseManifestFlags(args, pkg.version)
    const { config } = loadConfig(args)
    const files = renderManifests(config, options)
    for (const warning of manifestWarnings(config)) logger('config').warn(warning)
    if (typeof args.out !== 'string') {
      if (args.json) printJson({ files })
      else printText(joinManifests(files))
      return 0
    }
    const cwd = process.cwd()
    const written = writeManifests(files, resolve(cwd, args.out), args.force === true).map((path) => displayPath(path, cwd))
    if (args.json) printJson({ written })
    else
      printText(
        `wrote ${written.join(', ')}\nsecrets are not in them: see ${written.find((p) => /orch\.env\.example|secrets\.example/.test(p))}`,
      )
    return 0
  },
})

export default defineOrchCommand({
  meta: { name: 'scale', description: 'Deployment manifests for a cluster, and the autoscaler of a running orch serve' },
  subCommands: { manifests, ...scaleControl },
  examples: ['orch scale manifests --format compose --instances 3 --out deploy/', 'orch scale status', 'orch scale set gen 2'],
})
