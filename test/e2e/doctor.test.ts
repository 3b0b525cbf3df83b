import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { backend, closedPort, project, serverPort } from '../helpers/doctor-project.ts'
import { type FakeServer, startFakeOllama } from '../helpers/fake-ollama.ts'

let ollama: FakeServer
beforeAll(async () => {
  ollama = await startFakeOllama({ models: ['llama3.2', 'nomic-embed-text'] })
})
afterAll(() => ollama.stop())

describe('orch doctor', () => {
  test('a healthy setup: a reachable backend serving the configured models → exit 0', async () => {
    const { run } = project(
      [serverPort(), 'backends:', backend('local', ollama.url, ['llama3.2', 'nomic-embed-text:latest']), ''].join('\n'),
    )
    const r = await run()
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^STATUS\s+CHECK\s+DETAIL\n/)
    expect(r.stdout).toMatch(new RegExp(`\\nok\\s+backend local\\s+${ollama.url} reachable, 2 model\\(s\\)\\n`))
    expect(r.stdout).toContain('valid: orch.yaml')
    expect(r.stdout).toContain('CPU-only')
    expect(r.stdout).toMatch(/\d+ ok, \d+ warnings?, 0 errors/)
  })

  test('an unreachable backend and a missing model → exit 1, with the fixes', async () => {
    const down = `http://127.0.0.1:${closedPort()}`
    const yaml = [serverPort(), 'backends:', backend('down', down), backend('local', ollama.url, ['llama3.2', 'mistral']), ''].join('\n')
    const r = await project(yaml).run()
    expect(r.code).toBe(1)
    expect(r.stdout).toContain(`${down} unreachable`)
    expect(r.stdout).toContain('fix: start Ollama (`ollama serve`), or correct backends[0].url')
    expect(r.stdout).toContain(`mistral is configured but not served by ${ollama.url}`)
    expect(r.stdout).toContain('`ollama pull mistral`')
    expect(r.stdout).toContain('2 errors: apply the fixes above')
  })

  test('a bad config value → exit 1, with file:line, the key and the fix', async () => {
    const r = await project(['server:', '  port: 99999', 'backends:', backend('local', ollama.url), ''].join('\n')).run()
    expect(r.code).toBe(1)
    expect(r.stdout).toContain('orch.yaml:2:3: server.port: expected an integer 1-65535, got 99999')
    expect(r.stdout).toContain('fix: correct `server.port` in orch.yaml line 2')
    // The checks that need no configuration still run.
    expect(r.stdout).toContain('state directory')
  })

  test('--json: {ok, findings: [{id, status, title, detail, fix?}]}', async () => {
    const down = `http://127.0.0.1:${closedPort()}`
    const r = await project([serverPort(), 'backends:', backend('down', down), ''].join('\n')).run(['--json'])
    expect(r.code).toBe(1)
    const out = r.json<{ ok: boolean; findings: Array<{ id: string; status: string; title: string; detail: string; fix?: string }> }>()
    expect(out.ok).toBe(false)
    expect(Object.keys(out).sort()).toEqual(['findings', 'ok'])
    for (const f of out.findings) {
      expect(['ok', 'warning', 'error']).toContain(f.status)
      expect(typeof f.id).toBe('string')
      expect(typeof f.detail).toBe('string')
      if (f.status === 'error') expect(typeof f.fix).toBe('string')
    }
    const ids = out.findings.map((f) => f.id)
    for (const id of ['runtime', 'config', 'state-dir', 'state-db', 'disk', 'open-files', 'port.serve', 'backend.down', 'gpus']) {
      expect(ids).toContain(id)
    }
    expect(out.findings.find((f) => f.id === 'backend.down')?.status).toBe('error')
  })

  test('a fake nvidia-smi and ollama on PATH: GPUs listed, assignments checked, ollama version shown', async () => {
    const yaml = [
      serverPort(),
      'backends:',
      backend('local', ollama.url),
      'pools:',
      '  - name: pinned',
      '    profile: command',
      '    command: [sh, -c, "exit 0"]',
      '    pool_size: 2',
      '    gpus: [0, 5]',
      '  - name: spread',
      '    profile: ollama',
      '    pool_size: 2',
      '',
    ].join('\n')
    const p = project(yaml)
    p.fake('nvidia-smi', "printf '0, NVIDIA H100 80GB HBM3, 81559, 70000, 90\\n1, NVIDIA H100 80GB HBM3, 81559, 1024, [N/A]\\n'")
    p.fake('ollama', 'echo "ollama version is 0.12.3"')
    const r = await p.run(['--json'])
    expect(r.code).toBe(1)
    const { findings } = r.json<{ findings: Array<{ id: string; status: string; detail: string; fix?: string }> }>()
    const gpus = findings.find((f) => f.id === 'gpus')
    expect(gpus?.status).toBe('ok')
    expect(gpus?.detail).toContain('2 GPU(s): 0: NVIDIA H100 80GB HBM3 (70000/81559 MiB)')
    // pinned round-robins over its list; spread goes to GPU 1, which has the most free memory.
    expect(gpus?.detail).toContain('pinned-1→0, pinned-2→5, spread-1→1, spread-2→1')
    const bad = findings.find((f) => f.id === 'gpus.pinned')
    expect(bad?.status).toBe('error')
    expect(bad?.detail).toContain('GPU index 5 does not exist')
    expect(findings.find((f) => f.id === 'program.ollama')?.detail).toContain('version 0.12.3')
    expect(findings.find((f) => f.id === 'program.sh')?.status).toBe('ok')
  })

  test('GPUs assigned but nvidia-smi missing, and ollama missing → errors with fixes', async () => {
    const yaml = [serverPort(), 'backends:', backend('local', ollama.url), 'pools:', '  - name: gpu', '    gpus: [0]', ''].join('\n')
    const r = await project(yaml).run()
    expect(r.code).toBe(1)
    expect(r.stdout).toContain('are assigned GPUs, but none was detected')
    expect(r.stdout).toContain('ollama not found on PATH (needed by pool gpu)')
    expect(r.stdout).toContain('https://ollama.com/download')
  })
})
