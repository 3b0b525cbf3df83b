/**
 * Profiles: how one worker of a pool starts and how it is probed. Pure: config and a slot in, argv, env
 * and URLs out.
 *   command: the pool's `command` argv with {port}, {gpu}, {model}, {host} filled in; probed at health_path.
 *   ollama:  `ollama serve` with OLLAMA_HOST=127.0.0.1:<port>; probed at /api/tags (health_path).
 */
import type { PoolConfig } from '../config/schema.ts'

export const WORKER_HOST = '127.0.0.1'

export interface WorkerSlot {
  port: number
  /** CUDA_VISIBLE_DEVICES value, when the worker has a GPU. */
  gpu?: string | undefined
}

export interface WorkerLaunch {
  argv: string[]
  env: Record<string, string>
  url: string
  healthUrl: string
}

export function fillTemplate(arg: string, values: Record<string, string>): string {
  return arg.replace(/\{(port|gpu|model|host)\}/g, (whole, key: string) => values[key] ?? whole)
}

export function planLaunch(pool: PoolConfig, slot: WorkerSlot): WorkerLaunch {
  const url = `http://${WORKER_HOST}:${slot.port}`
  const env: Record<string, string> = { ...pool.env }
  if (slot.gpu !== undefined) env.CUDA_VISIBLE_DEVICES = slot.gpu
  const values = { port: String(slot.port), gpu: slot.gpu ?? '', model: pool.models[0] ?? '', host: WORKER_HOST }
  let argv: string[]
  if (pool.profile === 'command') {
    argv = (pool.command ?? []).map((arg) => fillTemplate(arg, values))
  } else {
    argv = ['ollama', 'serve']
    env.OLLAMA_HOST = `${WORKER_HOST}:${slot.port}`
  }
  return { argv, env, url, healthUrl: `${url}${pool.health_path}` }
}
