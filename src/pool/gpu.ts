/**
 * NVIDIA GPUs: detection through `nvidia-smi` (none, or a failing driver, means CPU-only, said plainly), parsing
 * of its CSV, and the pure placement of pool workers on GPUs (`CUDA_VISIBLE_DEVICES`).
 */

export interface Gpu {
  index: number
  name: string
  memory_total_mib: number
  memory_used_mib: number
  /** undefined when the driver reports `[N/A]`. */
  utilization_pct: number | undefined
}

export type GpuDetection = { available: true; gpus: Gpu[] } | { available: false; reason: string }

export interface RunResult {
  code: number
  stdout: string
  stderr: string
}

/** Runs an argument array; resolves with what it printed. Rejects when the program cannot be started. */
export type Runner = (argv: string[]) => Promise<RunResult>

export interface DetectOptions {
  /** Environment of the child (PATH decides which nvidia-smi runs); defaults to this process's. */
  env?: Record<string, string | undefined>
  timeoutMs?: number
  /** Replaces the spawn (tests). */
  run?: Runner
}

export const NVIDIA_SMI_ARGS = ['--query-gpu=index,name,memory.total,memory.used,utilization.gpu', '--format=csv,noheader,nounits'] as const

const CPU_ONLY = 'workers run CPU-only'

/** A number, or undefined for `[N/A]`, `N/A`, `[Not Supported]` and other non-numbers; units are tolerated. */
function numberOf(field: string | undefined): number | undefined {
  const match = /^\s*(-?\d+(?:\.\d+)?)/.exec(field ?? '')
  return match ? Number(match[1]) : undefined
}

/** Parse `nvidia-smi --query-gpu=index,name,memory.total,memory.used,utilization.gpu` CSV; bad lines are skipped. */
export function parseNvidiaSmi(text: string): Gpu[] {
  const gpus: Gpu[] = []
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === '') continue
    const fields = line.split(',').map((f) => f.trim())
    // A GPU name may itself hold commas: index first, the three numbers last, the name in between.
    if (fields.length < 5) continue
    const index = numberOf(fields[0])
    const tail = fields.slice(-3)
    const name = fields.slice(1, -3).join(', ')
    if (index === undefined || !Number.isInteger(index) || index < 0 || /^index$/i.test(fields[0] ?? '')) continue
    gpus.push({
      index,
      name,
      memory_total_mib: numberOf(tail[0]) ?? 0,
      memory_used_mib: numberOf(tail[1]) ?? 0,
      utilization_pct: numberOf(tail[2]),
    })
  }
  return gpus.sort((a, b) => a.index - b.index)
}

function spawnRunner(env: Record<string, string | undefined>, timeoutMs: number): Runner {
  return async (argv) => {
    const proc = Bun.spawn(argv, { env, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' })
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs)
    try {
      const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
      return { code: proc.signalCode ? 124 : code, stdout, stderr }
    } finally {
      clearTimeout(timer)
    }
  }
}

const firstLine = (text: string) => text.trim().split(/\r?\n/)[0]?.trim() ?? ''

/** The GPUs `nvidia-smi` reports; CPU-only (with the reason) when it is missing, fails or lists none. */
export async function detectGpus(options: DetectOptions = {}): Promise<GpuDetection> {
  const env = options.env ?? process.env
  let run = options.run
  let argv: string[]
  if (run) argv = ['nvidia-smi', ...NVIDIA_SMI_ARGS]
  else {
    const found = Bun.which('nvidia-smi', { PATH: env.PATH ?? '' })
    if (!found) return { available: false, reason: `nvidia-smi not found on PATH (no NVIDIA driver): ${CPU_ONLY}` }
    argv = [found, ...NVIDIA_SMI_ARGS]
    run = spawnRunner(env, options.timeoutMs ?? 10_000)
  }
  let result: RunResult
  try {
    result = await run(argv)
  } catch (error) {
    return { available: false, reason: `nvidia-smi could not be started (${(error as Error).message}): ${CPU_ONLY}` }
  }
  if (result.code !== 0) {
    const said = firstLine(result.stderr) || firstLine(result.stdout)
    const how = result.code === 124 ? 'timed out' : `failed (exit ${result.code})`
    return { available: false, reason: `nvidia-smi ${how}${said ? `: ${said}` : ''}; ${CPU_ONLY}` }
  }
  const gpus = parseNvidiaSmi(result.stdout)
  if (gpus.length === 0) return { available: false, reason: `nvidia-smi lists no GPU: ${CPU_ONLY}` }
  return { available: true, gpus }
}

export interface GpuPool {
  name: string
  pool_size: number
  /** Explicit GPU indexes, used round-robin by the pool's workers; empty or unset means "spread". */
  gpus?: readonly number[]
}

export const workerId = (pool: string, n: number) => `${pool}-${n}`

/**
 * Which GPU each worker gets (`<pool>-<n>`, n from 1). Pools with an explicit `gpus` list use it round-robin
 * (valid or not: the doctor reports indexes that do not exist). The others go, worker by worker, to the GPU
 * whose free memory is the largest once shared with the workers already placed on it (free / (placed + 1));
 * ties go to the lower index. No GPU: every worker gets undefined (CPU-only).
 */
export function assignGpus(pools: readonly GpuPool[], gpus: readonly Gpu[]): Map<string, number | undefined> {
  const placed = new Map<number, number>(gpus.map((g) => [g.index, 0]))
  const assignment = new Map<string, number | undefined>()
  for (const pool of pools) {
    const list = pool.gpus ?? []
    if (list.length === 0) continue
    for (let n = 1; n <= pool.pool_size; n++) {
      const index = list[(n - 1) % list.length] as number
      assignment.set(workerId(pool.name, n), index)
      if (placed.has(index)) placed.set(index, (placed.get(index) ?? 0) + 1)
    }
  }
  for (const pool of pools) {
    if ((pool.gpus ?? []).length > 0) continue
    for (let n = 1; n <= pool.pool_size; n++) {
      const best = pickByFreeMemory(gpus, placed)
      assignment.set(workerId(pool.name, n), best)
      if (best !== undefined) placed.set(best, (placed.get(best) ?? 0) + 1)
    }
  }
  return assignment
}

function pickByFreeMemory(gpus: readonly Gpu[], placed: Map<number, number>): number | undefined {
  let best: { index: number; share: number } | undefined
  for (const gpu of [...gpus].sort((a, b) => a.index - b.index)) {
    const free = Math.max(0, gpu.memory_total_mib - gpu.memory_used_mib)
    const share = free / ((placed.get(gpu.index) ?? 0) + 1)
    if (!best || share > best.share) best = { index: gpu.index, share }
  }
  return best?.index
}
