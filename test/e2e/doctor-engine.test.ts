import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { writeTinyGguf } from '../../scripts/make-tiny-gguf.ts'
import { backend, project, serverPort } from '../helpers/doctor-project.ts'
import { type FakeServer, startFakeOllama } from '../helpers/fake-ollama.ts'

// A reachable backend, so that only the llamacpp checks decide the exit code.
let ollama: FakeServer
beforeAll(async () => {
  ollama = await startFakeOllama({ models: ['llama3.2'] })
})
afterAll(() => ollama.stop())
const backends = () => ['backends:', backend('local', ollama.url)].join('\n')

interface Report {
  ok: boolean
  findings: Array<{ id: string; status: string; title: string; detail: string; fix?: string }>
}

/** A project whose orch.yaml has the given llamacpp pools, with models/tiny.gguf and a truncated models/broken.gguf. */
function llamacppProject(pools: string[]) {
  const p = project([serverPort(), backends(), 'pools:', ...pools, ''].join('\n'))
  mkdirSync(join(p.path, 'models'))
  writeTinyGguf(join(p.path, 'models/tiny.gguf'))
  const whole = readFileSync(join(p.path, 'models/tiny.gguf'))
  writeFileSync(join(p.path, 'models/broken.gguf'), whole.subarray(0, whole.length - 4096))
  return p
}

const pool = (name: string, model: string, ...llamacpp: string[]) => [
  `  - name: ${name}`,
  '    profile: llamacpp',
  `    model: ${model}`,
  ...(llamacpp.length > 0 ? ['    llamacpp:', ...llamacpp.map((line) => `      ${line}`)] : []),
]

const find = (report: Report, id: string) => report.findings.filter((f) => f.id === id)

describe('orch doctor: llamacpp pools', () => {
  test('a valid tiny GGUF and a truncated one: the engine loads, one model ok, the other an error → exit 1', async () => {
    const p = llamacppProject([...pool('tiny', 'models/tiny.gguf', 'threads: 1'), ...pool('broken', 'models/broken.gguf')])
    const r = await p.run(['--json'])
    expect(r.code).toBe(1)
    const report = r.json<Report>()
    expect(report.ok).toBe(false)
    const [engine, ...more] = find(report, 'engine')
    expect(more).toEqual([])
    expect(engine?.status).toBe('ok')
    expect(engine?.detail).toMatch(
      /^node-llama-cpp 3\.22\.1 from \S+node-llama-cpp; this machine supports .*; it uses cpu \(pools tiny, broken\)$/,
    )
    expect(find(report, 'model.tiny')).toEqual([
      { id: 'model.tiny', status: 'ok', title: 'model tiny', detail: 'models/tiny.gguf: GGUF v3, llama, 116K parameters, F32, 459 KiB' },
    ])
    expect(find(report, 'model.tiny.memory')[0]).toMatchObject({
      status: 'ok',
      detail: expect.stringMatching(/^no GPU: runs on the CPU/),
    })
    const [broken] = find(report, 'model.broken')
    expect(broken?.status).toBe('error')
    expect(broken?.detail).toMatch(/^pool broken: models\/broken\.gguf: its tensors need \d+ bytes but the file has \d+: truncated\?$/)
    expect(broken?.fix).toContain(`replace ${join(p.path, 'models/broken.gguf')} with a complete GGUF file`)
    // Only the broken file fails the run.
    expect(report.findings.filter((f) => f.status === 'error').map((f) => f.id)).toEqual(['model.broken'])
  })

  test('a GPU on the machine but only CPU binaries: a warning with the install command, and warnings do not fail → exit 0', async () => {
    const p = llamacppProject(pool('tiny', 'models/tiny.gguf'))
    p.fake('nvidia-smi', "printf '0, NVIDIA L4, 23034, 0, 0\\n'")
    const r = await p.run()
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(
      /\nwarn\s+engine GPU\s+pool tiny has gpu_layers auto and this machine has a GPU, but node-llama-cpp 3\.22\.1 from \S+ can use only the CPU: it runs on the CPU\n/,
    )
    expect(r.stdout).toContain(
      'fix: install the CUDA binaries: `npm install --prefix DIR node-llama-cpp@3.22.1` into a directory and set `llamacpp.node_llama_cpp_path: DIR` for pool tiny',
    )
    expect(r.stdout).toMatch(/\nok\s+model tiny\s+models\/tiny\.gguf: GGUF v3/)
  })

  test('node_llama_cpp_path pointing at an empty directory: the engine error with the install command → exit 1', async () => {
    const p = llamacppProject(pool('tiny', 'models/tiny.gguf', 'node_llama_cpp_path: engine'))
    mkdirSync(join(p.path, 'engine'))
    const r = await p.run(['--json'])
    expect(r.code).toBe(1)
    const report = r.json<Report>()
    const [engine] = find(report, 'engine')
    expect(engine?.status).toBe('error')
    expect(engine?.detail).toBe(
      `node-llama-cpp (the engine of llamacpp pools) could not be loaded; looked in ${join(p.path, 'engine')} (needed by pool tiny)`,
    )
    expect(engine?.fix).toContain(`install it with: npm install --prefix ${JSON.stringify(join(p.path, 'engine'))} node-llama-cpp@3.22.1`)
    // The model file is still checked.
    expect(find(report, 'model.tiny')[0]?.status).toBe('ok')
  })

  test('no llamacpp pool: no engine or model findings (node-llama-cpp is not loaded)', async () => {
    const p = project(
      [serverPort(), backends(), 'pools:', '  - name: cmd', '    profile: command', '    command: [sh, -c, "exit 0"]', ''].join('\n'),
    )
    const report = (await p.run(['--json'])).json<Report>()
    expect(report.findings.filter((f) => f.id.startsWith('engine') || f.id.startsWith('model.'))).toEqual([])
  })
})
