import { afterAll, describe, expect, test } from 'bun:test'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { writeTinyGguf } from '../../scripts/make-tiny-gguf.ts'
import {
  checkEngine,
  type DoctorFacts,
  type EngineFacts,
  type EngineLoadFacts,
  GiB,
  type GpuFacts,
  type LlamacppPoolFacts,
  MiB,
  planDoctor,
} from '../../src/doctor/checks.ts'
import { type GgufInfo, readGguf } from '../../src/engine/gguf.ts'
import type { Gpu } from '../../src/pool/gpu.ts'
import { tempDir } from '../helpers/cli.ts'

const dir = tempDir('orch-doctor-engine-')
afterAll(() => dir.cleanup())

/** What readGguf says about a file, or its reason: the facts run.ts gathers. */
function fileFacts(name: string, bytes?: Uint8Array | string): Pick<LlamacppPoolFacts, 'model' | 'path' | 'info' | 'error'> {
  const path = join(dir.path, name)
  if (bytes !== undefined) writeFileSync(path, bytes)
  try {
    return { model: `models/${name}`, path, info: readGguf(path) }
  } catch (error) {
    return { model: `models/${name}`, path, info: undefined, error: (error as Error).message }
  }
}

const tinyPath = join(dir.path, 'tiny.gguf')
writeTinyGguf(tinyPath)
const tiny = fileFacts('tiny.gguf')

/** An 8B-class model: 4.5 GiB of weights, 32 layers, embedding 4096, 8 of 32 heads for key/value. */
const big: GgufInfo = {
  version: 3,
  architecture: 'llama',
  tensorCount: 291,
  parameters: 8.03e9,
  fileBytes: 4.5 * GiB + 8 * MiB,
  dataBytes: 4.5 * GiB,
  blockCount: 32,
  embeddingLength: 4096,
  contextLength: 131072,
  headCount: 32,
  headCountKv: 8,
  fileType: 15,
}

const pool = (name: string, over: Partial<LlamacppPoolFacts> = {}): LlamacppPoolFacts => ({
  name,
  index: 0,
  ...tiny,
  gpuLayers: 'auto',
  contextSize: 'auto',
  parallel: 1,
  poolSize: 1,
  ...over,
})

const engineOn = (picked: string | false, over: Partial<EngineLoadFacts> = {}): EngineLoadFacts => ({
  pools: ['gen'],
  from: '/opt/orch/node_modules/node-llama-cpp',
  version: '3.22.1',
  supported: picked === false ? [false] : [picked, false],
  picked,
  ...over,
})

const gpu = (index: number, totalMib: number, usedMib: number): Gpu => ({
  index,
  name: 'NVIDIA L4',
  memory_total_mib: totalMib,
  memory_used_mib: usedMib,
  utilization_pct: 0,
})

const noGpu: GpuFacts = { detection: { available: false, reason: 'nvidia-smi not found on PATH' }, pools: [] }
/** The GPU facts doctor gathers: the detected GPUs and every pool's placement settings (`pinned`: a pool's `gpus`). */
const withGpus = (gpus: Gpu[], pools: LlamacppPoolFacts[], pinned: Record<string, number[]> = {}): GpuFacts => ({
  detection: { available: true, gpus },
  pools: pools.map((p) => ({ name: p.name, pool_size: p.poolSize, gpus: pinned[p.name] })),
})

const run = (engines: EngineLoadFacts[], pools: LlamacppPoolFacts[], gpus: GpuFacts = noGpu) => checkEngine({ engines, pools }, gpus)
const byId = (findings: ReturnType<typeof run>, id: string) => findings.filter((f) => f.id === id)

describe('engine: node-llama-cpp', () => {
  test('missing: an error naming the pools, with the install command as the fix', () => {
    const findings = run(
      [
        {
          path: '/srv/engine',
          pools: ['gen', 'chat'],
          error: 'node-llama-cpp (the engine of llamacpp pools) could not be loaded; looked in /srv/engine',
          fix: 'install it with: npm install --prefix "/srv/engine" node-llama-cpp@3.22.1 (docs/engine.md)',
        },
      ],
      [pool('gen', { enginePath: '/srv/engine' }), pool('chat', { enginePath: '/srv/engine' })],
    )
    const [engine] = byId(findings, 'engine')
    expect(engine).toMatchObject({ status: 'error', title: 'engine' })
    expect(engine?.detail).toBe(
      'node-llama-cpp (the engine of llamacpp pools) could not be loaded; looked in /srv/engine (needed by pools gen, chat)',
    )
    expect(engine?.fix).toContain('npm install --prefix "/srv/engine" node-llama-cpp@3.22.1')
  })

  test('loaded on CUDA: ok, with where from, the version, the supported backends and the one used', () => {
    const findings = run([engineOn('cuda')], [pool('gen')], withGpus([gpu(0, 24_000, 0)], [pool('gen')]))
    expect(byId(findings, 'engine')).toEqual([
      {
        id: 'engine',
        status: 'ok',
        title: 'engine',
        detail:
          'node-llama-cpp 3.22.1 from /opt/orch/node_modules/node-llama-cpp; this machine supports cuda, cpu; it uses cuda (pool gen)',
        fix: undefined,
      },
    ])
    expect(byId(findings, 'engine.gpu')).toEqual([])
  })

  test('another version than orch is built with: a warning', () => {
    const [engine] = byId(run([engineOn(false, { version: '3.9.0' })], [pool('gen', { gpuLayers: 0 })]), 'engine')
    expect(engine?.status).toBe('warning')
    expect(engine?.detail).toContain('orch is built and tested with 3.22.1')
    expect(engine?.fix).toContain('node-llama-cpp@3.22.1')
  })

  test('loaded, but no binary works here: an error with the reinstall command', () => {
    const [engine] = byId(run([engineOn(false, { picked: undefined, llamaError: 'NoBinaryFoundError' })], [pool('gen')]), 'engine')
    expect(engine?.status).toBe('error')
    expect(engine?.detail).toContain('has no binary that loads on this machine: NoBinaryFoundError')
    expect(engine?.fix).toBe('reinstall it with its binaries: npm install --prefix /opt/orch node-llama-cpp@3.22.1 (docs/engine.md)')
  })

  test('GPU layers wanted, a GPU on the machine, but only CPU binaries: a warning to install the CUDA binaries', () => {
    const pools = [pool('gen'), pool('embed', { gpuLayers: 0 })]
    const findings = run([engineOn(false, { pools: ['gen', 'embed'] })], pools, withGpus([gpu(0, 24_000, 0)], pools))
    const [warning] = byId(findings, 'engine.gpu')
    expect(warning?.status).toBe('warning')
    // Only the pool that wants GPU layers is named.
    expect(warning?.detail).toBe(
      'pool gen has gpu_layers auto and this machine has a GPU, but node-llama-cpp 3.22.1 from /opt/orch/node_modules/node-llama-cpp can use only the CPU: it runs on the CPU',
    )
    expect(warning?.fix).toBe(
      'install the CUDA binaries: `npm install --prefix DIR node-llama-cpp@3.22.1` into a directory and set `llamacpp.node_llama_cpp_path: DIR` for pool gen (docs/engine.md)',
    )
    expect(byId(findings, 'model.gen.memory')[0]?.detail).toStartWith('runs on the CPU (node-llama-cpp can use only the CPU')
  })

  test('node-llama-cpp detects CUDA drivers but has no CUDA binary (no nvidia-smi): the same warning, into the configured directory', () => {
    const pools = [pool('gen', { enginePath: '/srv/engine' })]
    const [warning] = byId(run([engineOn(false, { path: '/srv/engine', supported: ['cuda', false] })], pools), 'engine.gpu')
    expect(warning?.status).toBe('warning')
    expect(warning?.fix).toBe(
      'install the CUDA binaries into /srv/engine (llamacpp.node_llama_cpp_path): `npm install --prefix /srv/engine node-llama-cpp@3.22.1` (docs/engine.md)',
    )
  })

  test('CPU-only machine with gpu_layers auto: ok, it runs on the CPU', () => {
    const findings = run([engineOn(false)], [pool('gen')])
    expect(byId(findings, 'engine.gpu')).toEqual([
      { id: 'engine.gpu', status: 'ok', title: 'engine GPU', detail: 'no GPU on this machine: pool gen runs on the CPU', fix: undefined },
    ])
    expect(byId(findings, 'model.gen.memory')[0]).toMatchObject({
      status: 'ok',
      detail: 'no GPU: runs on the CPU; needs ~1.4 MiB of RAM a worker (2048-token context)',
    })
  })

  test('CPU-only machine with a GPU layer count: a warning to set gpu_layers 0', () => {
    const [warning] = byId(run([engineOn(false)], [pool('gen', { gpuLayers: 20 }), pool('auto')]), 'engine.gpu')
    expect(warning?.status).toBe('warning')
    expect(warning?.detail).toBe('pool gen has gpu_layers 20, but this machine has no usable GPU: it runs on the CPU')
    expect(warning?.fix).toStartWith(
      'set llamacpp.gpu_layers to 0 (or auto) for pool gen, or, on a machine with an NVIDIA GPU, install the CUDA binaries',
    )
  })

  test('every pool on gpu_layers 0: no GPU finding at all', () => {
    const findings = run([engineOn(false)], [pool('gen', { gpuLayers: 0 })], withGpus([gpu(0, 24_000, 0)], []))
    expect(byId(findings, 'engine.gpu')).toEqual([])
    expect(byId(findings, 'model.gen.memory')[0]?.detail).toStartWith('runs on the CPU (gpu_layers 0); needs ~')
  })
})

describe('engine: GGUF files', () => {
  test('a valid file: its version, architecture, parameters, quantization and size', () => {
    expect(byId(run([engineOn(false)], [pool('gen')]), 'model.gen')).toEqual([
      {
        id: 'model.gen',
        status: 'ok',
        title: 'model gen',
        detail: 'models/tiny.gguf: GGUF v3, llama, 116K parameters, F32, 459 KiB',
        fix: undefined,
      },
    ])
  })

  test('a truncated file: an error naming the pool and the file, to replace it', () => {
    const whole = readFileSync(tinyPath)
    const half = fileFacts('half.gguf', whole.subarray(0, whole.length / 2))
    const findings = run([engineOn(false)], [pool('half', { ...half, index: 3 })])
    const [f] = byId(findings, 'model.half')
    expect(f?.status).toBe('error')
    expect(f?.detail).toMatch(/^pool half: models\/half\.gguf: its tensors need \d+ bytes but the file has \d+: truncated\?$/)
    expect(f?.fix).toBe(
      `replace ${half.path} with a complete GGUF file (download it again and compare its checksum), or correct pools[3].model`,
    )
    // No memory estimate for a file that cannot be read.
    expect(byId(findings, 'model.half.memory')).toEqual([])
    const head = fileFacts('head.gguf', whole.subarray(0, 100))
    const [cut] = byId(run([engineOn(false)], [pool('head', head)]), 'model.head')
    expect(cut?.status).toBe('error')
    expect(cut?.detail).toMatch(/^pool head: models\/head\.gguf: the file ends inside its header \(at byte \d+ of 100\): truncated\?$/)
    expect(cut?.fix).toStartWith(`replace ${head.path} with a complete GGUF file`)
  })

  test('a file that is not GGUF: an error to point model at a .gguf file', () => {
    const [f] = byId(run([engineOn(false)], [pool('gen', fileFacts('weights.safetensors', '{"__metadata__": {}}'.repeat(4)))]), 'model.gen')
    expect(f?.status).toBe('error')
    expect(f?.detail).toBe('pool gen: models/weights.safetensors: not a GGUF file (it does not start with "GGUF")')
    expect(f?.fix).toContain('point pools[0].model at a .gguf model file')
  })

  test('a missing file: an error saying where it was looked for', () => {
    const missing = fileFacts('missing.gguf')
    const [f] = byId(run([engineOn(false)], [pool('gen', { ...missing, index: 1 })]), 'model.gen')
    expect(f?.status).toBe('error')
    expect(f?.detail).toBe('pool gen: models/missing.gguf: no such file')
    expect(f?.fix).toBe(`put the GGUF file at ${missing.path}, or correct pools[1].model (a path relative to the directory orch starts in)`)
  })
})

describe('engine: GPU memory', () => {
  const bigPool = (name: string, over: Partial<LlamacppPoolFacts> = {}) => pool(name, { model: 'models/8b.gguf', info: big, ...over })

  test('fits: ok with the estimate and the free memory', () => {
    const pools = [bigPool('gen')]
    const [f] = byId(run([engineOn('cuda')], pools, withGpus([gpu(0, 24_000, 1_000)], pools)), 'model.gen.memory')
    // 4.5 GiB of weights + 2 × 32 layers × 4096 tokens × 1024 × 2 bytes (0.5 GiB) of cache.
    expect(f).toMatchObject({
      status: 'ok',
      detail: 'fits: needs ~5.0 GiB a worker on the GPU (4096-token context); GPU 0 has 22.5 GiB free',
    })
  })

  test('too big for the free memory: a warning to lower context_size or gpu_layers', () => {
    const pools = [bigPool('gen', { parallel: 4, index: 2 })]
    const [f] = byId(run([engineOn('cuda')], pools, withGpus([gpu(0, 8_192, 2_048)], pools)), 'model.gen.memory')
    expect(f?.status).toBe('warning')
    // auto context: the model's own (131072) capped at 4096, × 4 parallel sequences: 2 GiB of cache.
    expect(f?.detail).toBe(
      'needs ~6.5 GiB a worker on the GPU (4096-token context × 4 parallel), GPU 0 has 6.0 GiB free; gpu_layers auto puts only the layers that fit there (slower)',
    )
    expect(f?.fix).toContain('lower context_size or gpu_layers (pools[2].llamacpp)')
  })

  test('the same pool with parallel 1 fits: parallel counts', () => {
    const pools = [bigPool('gen')]
    expect(byId(run([engineOn('cuda')], pools, withGpus([gpu(0, 8_192, 2_048)], pools)), 'model.gen.memory')[0]?.status).toBe('ok')
  })

  test('a context_size number is used as it is; an explicit layer count loads only that share', () => {
    const pools = [bigPool('gen', { contextSize: 32768, gpuLayers: 16 })]
    const gpus = withGpus([gpu(0, 8_192, 2_048)], pools)
    const [f] = byId(run([engineOn('cuda')], pools, gpus), 'model.gen.memory')
    // (4.5 GiB + 4 GiB of cache) × 16/32 layers.
    expect(f?.detail).toContain('needs ~4.3 GiB a worker on the GPU (32768-token context)')
    expect(f?.status).toBe('ok')
    const all = [bigPool('gen', { contextSize: 32768, gpuLayers: 32 })]
    const [over] = byId(run([engineOn('cuda')], all, withGpus([gpu(0, 8_192, 2_048)], all)), 'model.gen.memory')
    expect(over?.status).toBe('warning')
    expect(over?.detail).toContain('loading may fail for lack of memory')
  })

  test('workers that share a GPU add up: two workers of 5 GiB on a GPU with 8 GiB free', () => {
    const pools = [bigPool('gen', { poolSize: 2 })]
    const gpus = withGpus([gpu(0, 9_216, 1_024), gpu(1, 81_920, 0)], pools, { gen: [0] })
    const [f] = byId(run([engineOn('cuda')], pools, gpus), 'model.gen.memory')
    expect(f?.status).toBe('warning')
    expect(f?.detail).toContain('~10.0 GiB for 2 worker(s), GPU 0 has 8.0 GiB free')
  })

  test('another llamacpp pool on the same GPU counts against it, and is named', () => {
    const pools = [bigPool('gen'), bigPool('chat')]
    const gpus = withGpus([gpu(0, 9_216, 1_024), gpu(1, 81_920, 0)], pools, { gen: [0], chat: [0] })
    const findings = run([engineOn('cuda', { pools: ['gen', 'chat'] })], pools, gpus)
    expect(byId(findings, 'model.gen.memory')[0]?.detail).toContain('~10.0 GiB for 1 worker(s) with pool chat, GPU 0 has 8.0 GiB free')
    expect(byId(findings, 'model.chat.memory')[0]?.status).toBe('warning')
  })

  test('without a gpus list the worker goes to the GPU with the most free memory', () => {
    const pools = [bigPool('gen')]
    const [f] = byId(run([engineOn('cuda')], pools, withGpus([gpu(0, 8_192, 8_000), gpu(1, 24_576, 0)], pools)), 'model.gen.memory')
    expect(f).toMatchObject({ status: 'ok', detail: expect.stringContaining('GPU 1 has 24.0 GiB free') })
  })
})

describe('planDoctor', () => {
  const base: DoctorFacts = {
    bunVersion: '1.2.0',
    config: { files: [], issues: [], warnings: [] },
    home: { path: '/h', exists: true, writable: true },
    disk: { path: '/h', freeBytes: 100 * GiB },
    openFiles: 65536,
    gpus: noGpu,
  }
  test('engine findings only with a llamacpp pool; a bad GGUF fails the report', () => {
    expect(planDoctor(base).findings.some((f) => f.id.startsWith('engine') || f.id.startsWith('model.'))).toBe(false)
    const engine: EngineFacts = { engines: [engineOn(false)], pools: [pool('gen', fileFacts('missing.gguf'))] }
    const report = planDoctor({ ...base, engine })
    expect(report.ok).toBe(false)
    expect(report.findings.map((f) => `${f.id}:${f.status}`)).toEqual(expect.arrayContaining(['engine:ok', 'model.gen:error']))
  })
})
