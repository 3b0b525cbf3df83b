/**
 * Planners for the machine itself: runtime, GPUs against the pools' assignments, free disk, open files.
 */
import { assignGpus, type GpuDetection, type GpuPool } from '../pool/gpu.ts'
import { type Finding, fail, ok, warn } from './finding.ts'

export const MIN_BUN = '1.1.0'

/** Whether `version` (x.y.z, more parts ignored) is `minimum` or later. */
export function versionAtLeast(version: string, minimum: string): boolean {
  const parts = (s: string) => s.split(/[.-]/).map((p) => Number.parseInt(p, 10) || 0)
  const [a, b] = [parts(version), parts(minimum)]
  for (let i = 0; i < 3; i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0)
  }
  return true
}

export function checkRuntime(bunVersion: string | undefined): Finding {
  if (bunVersion === undefined)
    return fail('runtime', 'runtime', 'not running on Bun', 'run orch with Bun >= 1.1 (https://bun.sh), or use the compiled binary')
  if (!versionAtLeast(bunVersion, MIN_BUN)) {
    return fail('runtime', 'runtime', `Bun ${bunVersion} is older than ${MIN_BUN}`, 'upgrade Bun: `bun upgrade`')
  }
  return ok('runtime', 'runtime', `Bun ${bunVersion}`)
}

export interface GpuFacts {
  detection: GpuDetection
  pools: GpuPool[]
}

export function checkGpus(facts: GpuFacts): Finding[] {
  const { detection, pools } = facts
  const wanting = pools.filter((p) => (p.gpus ?? []).length > 0)
  if (!detection.available) {
    if (wanting.length > 0) {
      return [
        fail(
          'gpus',
          'GPUs',
          `pool(s) ${wanting.map((p) => p.name).join(', ')} are assigned GPUs, but none was detected: ${detection.reason}`,
          'install the NVIDIA driver so that `nvidia-smi` works, or remove `gpus` from those pools to run them on the CPU',
        ),
      ]
    }
    const note = detection.reason.includes('CPU-only') ? detection.reason : `CPU-only: ${detection.reason}`
    return [
      pools.length > 0
        ? warn('gpus', 'GPUs', note, 'models run on the CPU (slower); install an NVIDIA GPU and driver to use one')
        : ok('gpus', 'GPUs', note),
    ]
  }
  const { gpus } = detection
  const known = new Set(gpus.map((g) => g.index))
  const list = gpus.map((g) => `${g.index}: ${g.name} (${g.memory_used_mib}/${g.memory_total_mib} MiB)`).join('; ')
  const findings: Finding[] = []
  for (const pool of wanting) {
    const bad = (pool.gpus ?? []).filter((i) => !known.has(i))
    if (bad.length > 0) {
      findings.push(
        fail(
          `gpus.${pool.name}`,
          `GPUs pool ${pool.name}`,
          `GPU index ${bad.join(', ')} does not exist; this machine has ${list}`,
          `set pools[name=${pool.name}].gpus to indexes among ${[...known].join(', ')} (\`nvidia-smi -L\` lists them)`,
        ),
      )
    }
  }
  const placed = [...assignGpus(pools, gpus)].map(([worker, gpu]) => `${worker}→${gpu ?? 'cpu'}`).join(', ')
  findings.unshift(ok('gpus', 'GPUs', `${gpus.length} GPU(s): ${list}${placed ? `; workers: ${placed}` : ''}`))
  return findings
}

export const GiB = 1024 ** 3
export const MiB = 1024 ** 2

export function checkDisk(facts: { path: string; freeBytes: number | undefined; error?: string }): Finding {
  if (facts.freeBytes === undefined) return warn('disk', 'free disk', `unknown for ${facts.path}: ${facts.error ?? 'statfs failed'}`)
  const free = facts.freeBytes >= GiB ? `${(facts.freeBytes / GiB).toFixed(1)} GiB` : `${Math.round(facts.freeBytes / MiB)} MiB`
  const detail = `${free} free under ${facts.path}`
  const fix = 'free disk space (old logs: `orch logs`, `orch cache clear --expired`), or move the state with --home / ORCH_HOME'
  if (facts.freeBytes < 200 * MiB) return fail('disk', 'free disk', `${detail} (below 200 MiB)`, fix)
  if (facts.freeBytes < 2 * GiB) return warn('disk', 'free disk', `${detail} (below 2 GiB)`, fix)
  return ok('disk', 'free disk', detail)
}

export const MIN_OPEN_FILES = 4096

/** `soft`: the soft RLIMIT_NOFILE, Infinity for unlimited, undefined when it could not be read. */
export function checkOpenFiles(soft: number | undefined): Finding {
  if (soft === undefined) return ok('open-files', 'open-file limit', 'unknown on this system (no /proc/self/limits)')
  const shown = Number.isFinite(soft) ? String(soft) : 'unlimited'
  if (soft < MIN_OPEN_FILES) {
    return warn(
      'open-files',
      'open-file limit',
      `${shown}, below ${MIN_OPEN_FILES}: many connections and workers may hit it`,
      `raise it before starting orch: \`ulimit -n 65536\` (systemd: LimitNOFILE=65536)`,
    )
  }
  return ok('open-files', 'open-file limit', shown)
}
