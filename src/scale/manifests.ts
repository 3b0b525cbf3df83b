/**
 * `orch scale manifests`, pure: the resolved config and the flags in, the files of a deployment out
 * (docs/scaling.md#deployment-layouts). Nothing here reads the environment or touches the disk; the
 * command prints the files or writes them (./manifests-write.ts).
 *
 * Two layouts of the same cluster: one serve (`orch serve --no-tasks`), N workers (`orch worker`), one
 * Redis, and an Ollama for the backends that were on this machine's loopback. Both get the same Dockerfile.
 */
import type { OrchConfig } from '../config/schema.ts'
import { UsageError } from '../core/errors.ts'
import { renderCompose } from './manifests-compose.ts'
import { renderDockerfile } from './manifests-docker.ts'
import { renderKubernetes } from './manifests-k8s.ts'
import { MANIFEST_FORMATS, MAX_INSTANCES, type ManifestFile, type ManifestFormat, type ManifestOptions } from './manifests-types.ts'

export { MANIFEST_FORMATS, MAX_INSTANCES, type ManifestFile, type ManifestFormat, type ManifestOptions } from './manifests-types.ts'

/** Flags as citty hands them over. */
export interface ManifestFlags {
  format?: string | undefined
  instances?: string | undefined
  image?: string | undefined
  'serve-replicas'?: string | undefined
  namespace?: string | undefined
  keda?: boolean | undefined
  'with-redis'?: boolean | undefined
}

const HINT = 'run `orch scale manifests --help` for the flags and examples'
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/

function count(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback
  const value = /^\d+$/.test(text.trim()) ? Number(text.trim()) : Number.NaN
  if (!Number.isInteger(value) || value < 1 || value > MAX_INSTANCES) {
    throw new UsageError(`${flag}: expected a whole number from 1 to ${MAX_INSTANCES}, got "${text}"`, { hint: HINT })
  }
  return value
}

/** The flags checked, each refusal naming the flag and quoting what was given. */
export function parseManifestFlags(flags: ManifestFlags, version: string): ManifestOptions {
  if (flags.format === undefined) throw new UsageError('--format: required (compose or k8s)', { hint: HINT })
  const format = flags.format.trim().toLowerCase()
  if (!(MANIFEST_FORMATS as readonly string[]).includes(format)) {
    throw new UsageError(`--format: expected compose or k8s, got "${flags.format}"`, { hint: HINT })
  }
  if (flags.instances === undefined) throw new UsageError('--instances: required (the number of workers, e.g. 3)', { hint: HINT })
  const image = flags.image ?? `orch:${version}`
  if (image === '' || /\s/.test(image)) throw new UsageError(`--image: expected an image reference, got "${image}"`, { hint: HINT })
  const namespace = flags.namespace ?? 'default'
  if (!DNS_LABEL.test(namespace)) {
    throw new UsageError(`--namespace: expected a Kubernetes namespace (lowercase letters, digits and "-"), got "${namespace}"`, {
      hint: HINT,
    })
  }
  const options: ManifestOptions = {
    format: format as ManifestFormat,
    instances: count('--instances', flags.instances, 1),
    image,
    serveReplicas: count('--serve-replicas', flags['serve-replicas'], 1),
    namespace,
    keda: flags.keda === true,
    withRedis: flags['with-redis'] === true,
    version,
  }
  if (options.format === 'compose') {
    const k8sOnly = [
      ['--keda', options.keda],
      ['--with-redis', options.withRedis],
      ['--serve-replicas', flags['serve-replicas'] !== undefined],
      ['--namespace', flags.namespace !== undefined],
    ].filter(([, given]) => given)
    if (k8sOnly.length > 0) {
      const names = k8sOnly.map(([name]) => name).join(', ')
      throw new UsageError(`${names}: only with --format k8s (the compose layout always runs its own Redis and one serve)`, {
        hint: HINT,
      })
    }
  }
  return options
}

/** Every file of the layout, in the order they are printed. */
export function renderManifests(config: OrchConfig, options: ManifestOptions): ManifestFile[] {
  const files = options.format === 'compose' ? renderCompose(config, options) : renderKubernetes(config, options)
  return [...files, ...renderDockerfile(config, options)]
}

/** The files as one text, each after a comment line naming it (for stdout). */
export function joinManifests(files: ManifestFile[]): string {
  return files.map((f) => `# ==> ${f.path} <==\n${f.content.endsWith('\n') ? f.content : `${f.content}\n`}`).join('\n')
}
