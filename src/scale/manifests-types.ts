/** The options and the output of `orch scale manifests` (./manifests.ts). */

export const MANIFEST_FORMATS = ['compose', 'k8s'] as const
export type ManifestFormat = (typeof MANIFEST_FORMATS)[number]

/** More replicas than this is a typo, not a deployment. */
export const MAX_INSTANCES = 1000

export interface ManifestOptions {
  format: ManifestFormat
  /** Workers: compose `deploy.replicas`, the worker Deployment's replicas. */
  instances: number
  /** The orch image every orch container runs. */
  image: string
  /** Replicas of the serve Deployment (k8s). */
  serveReplicas: number
  /** Namespace of every Kubernetes object (KEDA reaches Redis by its full service name). */
  namespace: string
  /** A KEDA ScaledObject on the queue's ready set instead of the CPU HorizontalPodAutoscaler (k8s). */
  keda: boolean
  /** A Redis StatefulSet and Service (k8s); compose always runs its own Redis. */
  withRedis: boolean
  /** orch's version, for the image default and the labels. */
  version: string
}

export interface ManifestFile {
  /** Relative to the output directory, `/`-separated. */
  path: string
  content: string
}
