/**
 * Profiles: how one worker of a pool starts and how it is probed. Pure: config and a slot in, argv, env
 * and URLs out.
 *   command: the pool's `command` argv with {port}, {gpu}, {model}, {host} filled in; probed at health_path.
 *   ollama:  `ollama serve` with OLLAMA_HOST=127.0.0.1:<port>; probed at /api/tags (health_path).
 *   llamacpp: this orch's `model-worker` on the pool's GGUF file, with its llamacpp settings; probed at /health.
 */
import { resolve } from 'node:path'
import type { PoolConfig } from '../config/schema.ts'
import { selfCommand } from '../core/process.ts'

export const WORKER_HOST = '127.0.0.1'

export interface WorkerSlot {
  port: number
  /** CUDA_VISIBLE_DEVICES value, when the worker has a GPU. */
  gpu?: string | undefined
  /** How to run this orch (llamacpp workers run its model-worker); default: selfCommand(). */
  orch?: { argv: string[]; env: Record<string, string> } | undefined
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
  } else if (pool.profile === 'llamacpp') {
    argv = [...(slot.orch?.argv ?? selfCommand()), ...modelWorkerArgs(pool, slot.port)]
    Object.assign(env, slot.orch?.env)
  } else {
    argv = ['ollama', 'serve']
    env.OLLAMA_HOST = `${WORKER_HOST}:${slot.port}`
  }
  return { argv, env, url, healthUrl: `${url}${pool.health_path}` }
}

/** The `orch model-worker` arguments of a llamacpp pool's worker. */
export function modelWorkerArgs(pool: PoolConfig, port: number): string[] {
  const engine = pool.llamacpp
  const args = ['model-worker', '--model', resolve(pool.model ?? ''), '--port', String(port), '--host', WORKER_HOST]
  if (pool.models[0]) args.push('--name', pool.models[0])
  if (engine) {
    args.push('--gpu-layers', String(engine.gpu_layers), '--threads', String(engine.threads))
    args.push('--context', String(engine.context_size), '--parallel', String(engine.parallel))
    if (engine.node_llama_cpp_path) args.push('--engine-path', resolve(engine.node_llama_cpp_path))
  }
  return args
}
