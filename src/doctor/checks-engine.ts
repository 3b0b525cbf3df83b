/**
 * The planner for llamacpp pools: does node-llama-cpp load, and on which backend (CPU, CUDA, Vulkan); is
 * each pool's model a readable GGUF file; and does it fit the free memory of the GPU its workers get.
 * Only configurations with a `profile: llamacpp` pool get these findings.
 */
import { type GgufInfo, memoryEstimate, parameterSize, quantization } from '../engine/gguf.ts'
import { NODE_LLAMA_CPP_VERSION } from '../engine/llama.ts'
import { assignGpus, workerId } from '../pool/gpu.ts'
import { GiB, type GpuFacts, MiB } from './checks-machine.ts'
import { type Finding, fail, ok, warn } from './finding.ts'

/** node-llama-cpp as loaded from one `llamacpp.node_llama_cpp_path` (pools that leave it unset share one). */
export interface EngineLoadFacts {
  /** The configured directory, resolved; undefined: the default places (beside the binary, orch's own). */
  path?: string
  /** The llamacpp pools that use it. */
  pools: string[]
  /** Why it could not be loaded, with the fix (the install command). */
  error?: string
  fix?: string
  /** The package directory it was loaded from, and its version. */
  from?: string
  version?: string
  /** getLlamaGpuTypes('supported'): the backends this machine has drivers for; false is the CPU. */
  supported?: Array<string | false>
  /** What getLlama({gpu: 'auto'}) picked: false means the CPU. */
  picked?: string | false
  /** Why getLlama failed (no binary works here). */
  llamaError?: string
}

export interface LlamacppPoolFacts {
  name: string
  /** Index in `pools`, for the fix. */
  index: number
  /** `model` as configured, and resolved against the directory orch starts in. */
  model: string
  path: string
  info?: GgufInfo
  /** Why the file is not a usable GGUF (readGguf's reason). */
  error?: string
  gpuLayers: 'auto' | number
  contextSize: 'auto' | number
  parallel: number
  poolSize: number
  /** `llamacpp.node_llama_cpp_path`, resolved, as in EngineLoadFacts.path. */
  enginePath?: string
}

export interface EngineFacts {
  engines: EngineLoadFacts[]
  pools: LlamacppPoolFacts[]
}

/** 459 KiB, 12.3 MiB, 4.7 GiB. */
export function formatBytes(bytes: number): string {
  if (bytes >= GiB) return `${(bytes / GiB).toFixed(1)} GiB`
  if (bytes >= MiB) return `${(bytes / MiB).toFixed(1)} MiB`
  return `${Math.round(bytes / 1024)} KiB`
}

const backendName = (gpu: string | false) => (gpu === false ? 'cpu' : gpu)
const poolList = (pools: string[]) => `pool${pools.length > 1 ? 's' : ''} ${pools.join(', ')}`
const installIn = (dir: string) => `npm install --prefix ${dir} node-llama-cpp@${NODE_LLAMA_CPP_VERSION}`
/** The --prefix that reinstalls it where it was found: the configured directory, or the one above node_modules. */
const prefixOf = (engine: EngineLoadFacts, from: string) => engine.path ?? from.replace(/[\\/]node_modules[\\/]node-llama-cpp$/, '')

function checkLoad(engine: EngineLoadFacts, pools: LlamacppPoolFacts[], machineHasGpu: boolean): Finding[] {
  const users = poolList(engine.pools)
  if (engine.error !== undefined || engine.from === undefined) {
    const fix = engine.fix ?? `install it with: ${installIn(engine.path ?? 'DIR')} (docs/engine.md)`
    return [fail('engine', 'engine', `${engine.error ?? 'node-llama-cpp could not be loaded'} (needed by ${users})`, fix)]
  }
  const at = `node-llama-cpp ${engine.version ?? 'unknown'} from ${engine.from}`
  if (engine.llamaError !== undefined) {
    return [
      fail(
        'engine',
        'engine',
        `${at} has no binary that loads on this machine: ${engine.llamaError} (needed by ${users})`,
        `reinstall it with its binaries: ${installIn(prefixOf(engine, engine.from))} (docs/engine.md)`,
      ),
    ]
  }
  const supported = (engine.supported ?? []).map(backendName).join(', ') || 'none'
  const findings: Finding[] = []
  const detail = `${at}; this machine supports ${supported}; it uses ${backendName(engine.picked ?? false)} (${users})`
  if (engine.version !== NODE_LLAMA_CPP_VERSION) {
    findings.push(
      warn(
        'engine',
        'engine',
        `${detail}; orch is built and tested with ${NODE_LLAMA_CPP_VERSION}`,
        engine.path
          ? `install that version: ${installIn(engine.path)}`
          : `install that version: ${installIn('DIR')}, and set llamacpp.node_llama_cpp_path to DIR`,
      ),
    )
  } else findings.push(ok('engine', 'engine', detail))
  if (engine.picked !== false && engine.picked !== undefined) return findings
  const wanting = pools.filter((p) => p.gpuLayers !== 0)
  if (wanting.length === 0) return findings
  const gpuHere = machineHasGpu || (engine.supported ?? []).some((t) => t !== false)
  // With no GPU on the machine, gpu_layers auto simply means the CPU; only an explicit count is a mistake.
  const asking = gpuHere ? wanting : wanting.filter((p) => typeof p.gpuLayers === 'number')
  if (asking.length === 0) {
    const verb = wanting.length > 1 ? 'run' : 'runs'
    findings.push(ok('engine.gpu', 'engine GPU', `no GPU on this machine: ${poolList(wanting.map((p) => p.name))} ${verb} on the CPU`))
    return findings
  }
  const names = poolList(asking.map((p) => p.name))
  const asked = asking.map((p) => `pool ${p.name} has gpu_layers ${p.gpuLayers}`).join(', ')
  const runs = `${asking.length > 1 ? 'they run' : 'it runs'} on the CPU`
  const install = engine.path
    ? `install the CUDA binaries into ${engine.path} (llamacpp.node_llama_cpp_path): \`${installIn(engine.path)}\` (docs/engine.md)`
    : `install the CUDA binaries: \`${installIn('DIR')}\` into a directory and set \`llamacpp.node_llama_cpp_path: DIR\` for ${names} (docs/engine.md)`
  findings.push(
    gpuHere
      ? warn('engine.gpu', 'engine GPU', `${asked} and this machine has a GPU, but ${at} can use only the CPU: ${runs}`, install)
      : warn(
          'engine.gpu',
          'engine GPU',
          `${asked}, but this machine has no usable GPU: ${runs}`,
          `set llamacpp.gpu_layers to 0 (or auto) for ${names}, or, on a machine with an NVIDIA GPU, ${install}`,
        ),
  )
  return findings
}

function checkFile(pool: LlamacppPoolFacts): Finding {
  const id = `model.${pool.name}`
  const title = `model ${pool.name}`
  const key = `pools[${pool.index}].model`
  if (pool.info === undefined) {
    const reason = pool.error ?? 'could not be read'
    const fix =
      reason === 'no such file'
        ? `put the GGUF file at ${pool.path}, or correct ${key} (a path relative to the directory orch starts in)`
        : reason.startsWith('not a GGUF file')
          ? `point ${key} at a .gguf model file (llama.cpp's convert_hf_to_gguf.py converts other formats)`
          : `replace ${pool.path} with a complete GGUF file (download it again and compare its checksum), or correct ${key}`
    return fail(id, title, `pool ${pool.name}: ${pool.model}: ${reason}`, fix)
  }
  const info = pool.info
  return ok(
    id,
    title,
    `${pool.model}: GGUF v${info.version}, ${info.architecture}, ${parameterSize(info.parameters)} parameters, ` +
      `${quantization(info)}, ${formatBytes(info.fileBytes)}`,
  )
}

/** Context tokens a worker holds: `context_size`, or for auto the model's own up to 4096; times `parallel`. */
export function contextTokens(pool: LlamacppPoolFacts, info: GgufInfo): { context: number; tokens: number } {
  const context = typeof pool.contextSize === 'number' ? pool.contextSize : Math.min(info.contextLength ?? 4096, 4096)
  return { context, tokens: context * pool.parallel }
}

/** Bytes one worker of the pool puts on its GPU: the estimate, times the share of layers offloaded. */
export function workerGpuBytes(pool: LlamacppPoolFacts, info: GgufInfo): number {
  const total = memoryEstimate(info, contextTokens(pool, info).tokens)
  if (typeof pool.gpuLayers !== 'number' || !info.blockCount) return total
  return total * Math.min(1, pool.gpuLayers / info.blockCount)
}

function checkFits(pool: LlamacppPoolFacts, facts: EngineFacts, gpus: GpuFacts): Finding | undefined {
  const info = pool.info
  if (info === undefined) return undefined
  const id = `model.${pool.name}.memory`
  const title = `model ${pool.name} memory`
  const { context } = contextTokens(pool, info)
  const cache = `${context}-token context${pool.parallel > 1 ? ` × ${pool.parallel} parallel` : ''}`
  const ram = `needs ~${formatBytes(memoryEstimate(info, context * pool.parallel))} of RAM a worker (${cache})`
  if (pool.gpuLayers === 0) return ok(id, title, `runs on the CPU (gpu_layers 0); ${ram}`)
  if (!gpus.detection.available) return ok(id, title, `no GPU: runs on the CPU; ${ram}`)
  const engine = facts.engines.find((e) => e.path === pool.enginePath)
  if (engine?.picked === false) return ok(id, title, `runs on the CPU (node-llama-cpp can use only the CPU, see engine GPU); ${ram}`)
  // Which GPU each worker gets, as the supervisor places them; every llamacpp worker there counts against it.
  const placement = assignGpus(gpus.pools, gpus.detection.gpus)
  const onGpu = new Map<number, { bytes: number; mine: number; others: Set<string> }>()
  for (const other of facts.pools) {
    if (other.info === undefined || other.gpuLayers === 0) continue
    for (let n = 1; n <= other.poolSize; n++) {
      const gpu = placement.get(workerId(other.name, n))
      if (gpu === undefined) continue
      const slot = onGpu.get(gpu) ?? { bytes: 0, mine: 0, others: new Set<string>() }
      slot.bytes += workerGpuBytes(other, other.info)
      if (other.name === pool.name) slot.mine++
      else slot.others.add(other.name)
      onGpu.set(gpu, slot)
    }
  }
  const perWorker = formatBytes(workerGpuBytes(pool, info))
  const needs = `needs ~${perWorker} a worker on the GPU (${cache})`
  const fitted: string[] = []
  for (const [index, slot] of [...onGpu].sort((a, b) => a[0] - b[0])) {
    if (slot.mine === 0) continue
    const gpu = gpus.detection.gpus.find((g) => g.index === index)
    if (gpu === undefined) continue // an index that does not exist: the gpus check reports it
    const free = Math.max(0, gpu.memory_total_mib - gpu.memory_used_mib) * MiB
    const sharing =
      slot.mine > 1 || slot.others.size > 0
        ? `, ~${formatBytes(slot.bytes)} for ${slot.mine} worker(s)${slot.others.size > 0 ? ` with ${poolList([...slot.others])}` : ''}`
        : ''
    if (slot.bytes > free) {
      const effect =
        pool.gpuLayers === 'auto' ? 'gpu_layers auto puts only the layers that fit there (slower)' : 'loading may fail for lack of memory'
      return warn(
        id,
        title,
        `${needs}${sharing}, GPU ${index} has ${formatBytes(free)} free; ${effect}`,
        `lower context_size or gpu_layers (pools[${pool.index}].llamacpp), or parallel, or give the pool a GPU with more free memory (pools[${pool.index}].gpus)`,
      )
    }
    fitted.push(`GPU ${index} has ${formatBytes(free)} free${sharing}`)
  }
  if (fitted.length === 0) return ok(id, title, `no GPU placed: runs on the CPU; ${ram}`)
  return ok(id, title, `fits: ${needs}; ${fitted.join('; ')}`)
}

export function checkEngine(facts: EngineFacts, gpus: GpuFacts): Finding[] {
  const machineHasGpu = gpus.detection.available
  const findings = facts.engines.flatMap((engine) =>
    checkLoad(
      engine,
      facts.pools.filter((p) => p.enginePath === engine.path),
      machineHasGpu,
    ),
  )
  for (const pool of facts.pools) {
    findings.push(checkFile(pool))
    const fits = checkFits(pool, facts, gpus)
    if (fits) findings.push(fits)
  }
  return findings
}
