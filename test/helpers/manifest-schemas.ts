/**
 * Offline validation of generated deployment files against the official schemas: compose files against the
 * Compose Specification's JSON schema (vendored, test/fixtures/compose-spec/SOURCE.md) with ajv; Kubernetes
 * objects with kubernetes-models, whose validators are generated from Kubernetes' OpenAPI spec, and
 * @kubernetes-models/keda, generated from KEDA's CRDs. Test-only: nothing under src/ or commands/ imports these.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ScaledObject, TriggerAuthentication } from '@kubernetes-models/keda/keda.sh/v1alpha1'
import Ajv from 'ajv'
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1'
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2'
import { ConfigMap, Secret, Service } from 'kubernetes-models/v1'
import YAML from 'yaml'

const COMPOSE_SCHEMA = JSON.parse(readFileSync(join(import.meta.dir, '../fixtures/compose-spec/compose-spec.json'), 'utf8'))
// The schema names the draft-07 meta-schema by its https URL, which ajv does not carry; the schema is
// upstream's and trusted, so it is compiled without checking it against its meta-schema.
const validateCompose = new Ajv({ allErrors: true, strict: false, validateSchema: false }).compile(COMPOSE_SCHEMA)

/** The problems the Compose schema finds in a compose file (parsed), as `path: message` lines; [] when valid. */
export function composeProblems(compose: unknown): string[] {
  if (validateCompose(compose)) return []
  return (validateCompose.errors ?? []).map(
    (e) => `${e.instancePath || '/'}: ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`,
  )
}

type ModelClass = new (data: any) => { validate(): void }

const KINDS: Record<string, ModelClass> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'keda.sh/v1alpha1/ScaledObject': ScaledObject,
  'keda.sh/v1alpha1/TriggerAuthentication': TriggerAuthentication,
}

/** The problem the schema of its kind finds in one Kubernetes object; undefined when valid. */
export function kubernetesProblem(object: { apiVersion?: unknown; kind?: unknown }): string | undefined {
  const model = KINDS[`${object.apiVersion}/${object.kind}`]
  if (!model) return `no schema for ${object.apiVersion}/${object.kind}`
  try {
    new model(object).validate()
    return undefined
  } catch (error) {
    return `${object.kind}: ${(error as Error).message}`
  }
}

/** A Kubernetes YAML file's documents, read as Kubernetes reads them (YAML 1.1: a bare `yes` is a boolean). */
export function kubernetesDocuments(text: string): any[] {
  return YAML.parseAllDocuments(text, { version: '1.1' })
    .map((d) => d.toJS())
    .filter((d) => d !== null)
}
