import { afterEach, describe, expect, test } from 'bun:test'
import { chmodSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { assignGpus, detectGpus, type Gpu, NVIDIA_SMI_ARGS, parseNvidiaSmi } from '../../src/pool/gpu.ts'
import { tempDir } from '../helpers/cli.ts'

const TWO_GPUS = '0, NVIDIA H100 80GB HBM3, 81559, 1024, 3\n1, NVIDIA H100 80GB HBM3, 81559, 40960, 97\n'

const gpu = (index: number, total: number, used: number): Gpu => ({
  index,
  name: 'NVIDIA Test',
  memory_total_mib: total,
  memory_used_mib: used,
  utilization_pct: 0,
})

const dirs: Array<{ cleanup: () => void }> = []
afterEach(() => {
  for (const dir of dirs.splice(0)) dir.cleanup()
})

/** A directory holding an executable `nvidia-smi` shell script with the given body. */
function fakeSmiDir(body: string): string {
  const dir = tempDir('orch-gpu-')
  dirs.push(dir)
  const file = join(dir.path, 'nvidia-smi')
  writeFileSync(file, `#!/bin/sh\n${body}\n`)
  chmodSync(file, 0o755)
  return dir.path
}

describe('parseNvidiaSmi', () => {
  test('two GPUs, as nvidia-smi prints them', () => {
    expect(parseNvidiaSmi(TWO_GPUS)).toEqual([
      { index: 0, name: 'NVIDIA H100 80GB HBM3', memory_total_mib: 81559, memory_used_mib: 1024, utilization_pct: 3 },
      { index: 1, name: 'NVIDIA H100 80GB HBM3', memory_total_mib: 81559, memory_used_mib: 40960, utilization_pct: 97 },
    ])
  })

  test('[N/A] fields, odd spacing, CRLF, blank lines and a name with a comma', () => {
    const text = '  0 ,  Tesla T4 ,15360,   0 , [N/A]\r\n\r\n1, GPU, rev B, 24576, 512, 10\n'
    const gpus = parseNvidiaSmi(text)
    expect(gpus).toHaveLength(2)
    expect(gpus[0]).toEqual({ index: 0, name: 'Tesla T4', memory_total_mib: 15360, memory_used_mib: 0, utilization_pct: undefined })
    expect(gpus[1]?.name).toBe('GPU, rev B')
    expect(gpus[1]?.memory_used_mib).toBe(512)
  })

  test('headers, garbage and error text yield no GPU; order follows the index', () => {
    expect(parseNvidiaSmi('index, name, memory.total [MiB], memory.used [MiB], utilization.gpu [%]\n')).toEqual([])
    expect(parseNvidiaSmi('NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.')).toEqual([])
    expect(parseNvidiaSmi('').length).toBe(0)
    expect(parseNvidiaSmi('1, B, 10, 1, 1\n0, A, 10, 1, 1').map((g) => g.index)).toEqual([0, 1])
  })
})

describe('assignGpus', () => {
  test('an explicit list is used round-robin within the pool', () => {
    const placed = assignGpus([{ name: 'llm', pool_size: 5, gpus: [2, 0] }], [gpu(0, 100, 0), gpu(2, 100, 0)])
    expect([...placed]).toEqual([
      ['llm-1', 2],
      ['llm-2', 0],
      ['llm-3', 2],
      ['llm-4', 0],
      ['llm-5', 2],
    ])
  })

  test('without a list, workers go to the GPU with the most free memory, counting those already placed', () => {
    // GPU 0: 80 GiB free, GPU 1: 40 GiB free.
    const gpus = [gpu(0, 81920, 0), gpu(1, 81920, 40960)]
    const placed = assignGpus([{ name: 'a', pool_size: 4 }], gpus)
    // 80 > 40 → 0; 80/2 = 40 ties 40 → lower index 0; 80/3 < 40 → 1; 80/3 > 40/2 → 0.
    expect([...placed.values()]).toEqual([0, 0, 1, 0])
  })

  test('explicit placements count when spreading the other pools', () => {
    const gpus = [gpu(0, 1000, 0), gpu(1, 1000, 0)]
    const placed = assignGpus(
      [
        { name: 'spread', pool_size: 2 },
        { name: 'pinned', pool_size: 2, gpus: [0] },
      ],
      gpus,
    )
    expect(placed.get('pinned-1')).toBe(0)
    expect(placed.get('pinned-2')).toBe(0)
    expect(placed.get('spread-1')).toBe(1)
    expect(placed.get('spread-2')).toBe(1)
  })

  test('no GPU: every worker is CPU-only (undefined)', () => {
    const placed = assignGpus([{ name: 'cpu', pool_size: 2, gpus: [] }], [])
    expect([...placed]).toEqual([
      ['cpu-1', undefined],
      ['cpu-2', undefined],
    ])
  })
})

describe('detectGpus', () => {
  test('runs nvidia-smi with the query arguments and parses its output (injected runner)', async () => {
    let seen: string[] = []
    const result = await detectGpus({
      run: async (argv) => {
        seen = argv
        return { code: 0, stdout: TWO_GPUS, stderr: '' }
      },
    })
    expect(seen).toEqual(['nvidia-smi', ...NVIDIA_SMI_ARGS])
    expect(result.available && result.gpus.length).toBe(2)
  })

  test('a fake nvidia-smi first on PATH: its GPUs are detected', async () => {
    const dir = fakeSmiDir(`printf '${TWO_GPUS.replace(/\n/g, '\\n')}'`)
    const result = await detectGpus({ env: { PATH: dir } })
    if (!result.available) throw new Error(result.reason)
    expect(result.gpus.map((g) => [g.index, g.memory_used_mib, g.utilization_pct])).toEqual([
      [0, 1024, 3],
      [1, 40960, 97],
    ])
  })

  test('the fake gets exactly the query arguments', async () => {
    const dir = fakeSmiDir(
      `[ "$1 $2" = "${NVIDIA_SMI_ARGS.join(' ')}" ] || { echo "bad args: $*" >&2; exit 9; }\necho '0, Fake, 100, 1, [N/A]'`,
    )
    const result = await detectGpus({ env: { PATH: dir } })
    expect(result).toEqual({
      available: true,
      gpus: [{ index: 0, name: 'Fake', memory_total_mib: 100, memory_used_mib: 1, utilization_pct: undefined }],
    })
  })

  test('no nvidia-smi on PATH: CPU-only, said plainly', async () => {
    const dir = tempDir('orch-gpu-empty-')
    dirs.push(dir)
    const result = await detectGpus({ env: { PATH: dir.path } })
    expect(result.available).toBe(false)
    if (!result.available) expect(result.reason).toBe('nvidia-smi not found on PATH (no NVIDIA driver): workers run CPU-only')
  })

  test('a failing nvidia-smi (no driver): CPU-only with its message', async () => {
    const dir = fakeSmiDir(`echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.'; exit 9`)
    const result = await detectGpus({ env: { PATH: dir } })
    expect(result.available).toBe(false)
    if (!result.available) {
      expect(result.reason).toContain('nvidia-smi failed (exit 9): NVIDIA-SMI has failed')
      expect(result.reason).toContain('CPU-only')
    }
  })

  test('a hanging nvidia-smi is killed after the timeout: CPU-only', async () => {
    const dir = fakeSmiDir('exec sleep 30')
    const started = Date.now()
    const result = await detectGpus({ env: { PATH: `${dir}:/usr/bin:/bin` }, timeoutMs: 300 })
    expect(Date.now() - started).toBeLessThan(15_000)
    expect(result.available).toBe(false)
    if (!result.available) expect(result.reason).toContain('timed out')
  })

  test('an nvidia-smi that lists nothing, or cannot start: CPU-only', async () => {
    const empty = await detectGpus({ run: async () => ({ code: 0, stdout: '\n', stderr: '' }) })
    expect(empty).toEqual({ available: false, reason: 'nvidia-smi lists no GPU: workers run CPU-only' })
    const broken = await detectGpus({
      run: async () => {
        throw new Error('EACCES')
      },
    })
    expect(!broken.available && broken.reason).toContain('could not be started (EACCES)')
  })
})
