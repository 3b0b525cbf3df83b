/**
 * `orch batch run --llm` through the real CLI against a fake Ollama: the model writes the rationale, the
 * response cache (in the temp working directory) answers a re-run, and a backend that is gone means rules.
 */
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT, runCli, tempDir } from '../helpers/cli.ts'
import { type FakeServer, startFakeOllama } from '../helpers/fake-ollama.ts'

let tmp: ReturnType<typeof tempDir>
let ollama: FakeServer

const SAMPLE = join(ROOT, 'examples/Inputs/Sample1')

beforeEach(async () => {
  tmp = tempDir('orch-batch-llm-')
  ollama = await startFakeOllama({ reply: () => '{"rationale":"from the model"}' })
  writeFileSync(
    join(tmp.path, 'orch.yaml'),
    [
      'backends:',
      '  - name: fake',
      '    type: ollama',
      `    url: ${ollama.url}`,
      '    models: [llama3.2]',
      'infrastructure_system:',
      '  llm_orchestration:',
      '    caching:',
      `      cache_path: ${join(tmp.path, 'llm_cache.db')}`,
      '',
    ].join('\n'),
  )
})

afterEach(async () => {
  await ollama.stop()
  tmp.cleanup()
})

const runBatch = () =>
  runCli(['batch', 'run', SAMPLE, '--llm', '--out', join(tmp.path, 'result.json'), '--json'], {
    cwd: tmp.path,
    env: { ORCH_HOME: join(tmp.path, '.orch') },
  })

const sources = (result: { metrics: Record<string, { rationale_source?: string; rationale?: string }> }) =>
  Object.values(result.metrics).map((m) => [m.rationale_source, m.rationale])

describe('orch batch run --llm', () => {
  test('the model writes each rationale; a re-run is answered by the cache', async () => {
    const first = await runBatch()
    expect(first.code).toBe(0)
    expect(sources(first.json())).toEqual([
      ['llm', 'from the model'],
      ['llm', 'from the model'],
    ])
    const calls = ollama.calls.filter((c) => c.path === '/api/chat').length
    expect(calls).toBe(2)
    const asked = ollama.calls.find((c) => c.path === '/api/chat')?.body
    expect(asked).toMatchObject({ format: 'json', options: { temperature: 0 } })

    const second = await runBatch()
    expect(second.code).toBe(0)
    expect(sources(second.json())).toEqual(sources(first.json()))
    expect(ollama.calls.filter((c) => c.path === '/api/chat').length).toBe(calls)
  })

  test('with the backend gone the rules write the rationale and the run succeeds', async () => {
    await ollama.stop()
    const result = await runBatch()
    expect(result.code).toBe(0)
    const metrics = Object.values(result.json().metrics) as { rationale_source: string }[]
    expect(metrics.map((m) => m.rationale_source)).toEqual(['rules', 'rules'])
  })
})
