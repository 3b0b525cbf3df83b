/**
 * The llamacpp pool profile's keys: what it requires, what it refuses on other profiles, its defaults, and
 * the model-worker command line and concurrency each key turns into.
 */
import { describe, expect, test } from 'bun:test'
import { resolve } from 'node:path'
import { validateData } from '../../src/config/validate.ts'
import { modelWorkerArgs, planLaunch } from '../../src/pool/profiles.ts'
import { poolWorkerConcurrency } from '../../src/scheduler/limits.ts'

const issuesOf = (pool: Record<string, unknown>) =>
  validateData({ pools: [{ name: 'p', ...pool }] }).issues.map((i) => `${i.segments.join('.')}: ${i.message}`)

const poolOf = (pool: Record<string, unknown>) => {
  const { config, issues } = validateData({ pools: [{ name: 'p', ...pool }] })
  expect(issues).toEqual([])
  const first = config?.pools[0]
  if (!first) throw new Error('no pool')
  return { config: config as NonNullable<typeof config>, pool: first }
}

describe('llamacpp pools', () => {
  test('defaults: the model name from the file, /health, the Ollama API, one request at a time', () => {
    const { pool } = poolOf({ profile: 'llamacpp', model: 'models/Llama-3.2-1B.Q4_K_M.gguf' })
    expect(pool.models).toEqual(['Llama-3.2-1B.Q4_K_M'])
    expect(pool.health_path).toBe('/health')
    expect(pool.api).toBe('ollama')
    expect(pool.llamacpp).toEqual({ gpu_layers: 'auto', threads: 0, context_size: 'auto', parallel: 1 })
  })

  test('each key reaches the model-worker command line', () => {
    const { pool } = poolOf({
      profile: 'llamacpp',
      model: 'm.gguf',
      models: ['chat'],
      llamacpp: { gpu_layers: 20, threads: 1, context_size: 4096, parallel: 4, node_llama_cpp_path: '/opt/engine' },
    })
    const args = modelWorkerArgs(pool, 12345)
    const flag = (name: string) => args[args.indexOf(name) + 1]
    expect(args[0]).toBe('model-worker')
    expect(flag('--model')).toBe(resolve('m.gguf'))
    expect(flag('--port')).toBe('12345')
    expect(flag('--host')).toBe('127.0.0.1')
    expect(flag('--name')).toBe('chat')
    expect(flag('--gpu-layers')).toBe('20')
    expect(flag('--threads')).toBe('1')
    expect(flag('--context')).toBe('4096')
    expect(flag('--parallel')).toBe('4')
    expect(flag('--engine-path')).toBe('/opt/engine')
    expect(poolWorkerConcurrency({ runtime: { ollama: { concurrency: 9 } } }, pool)).toEqual({
      concurrency: 4,
      source: 'pools[].llamacpp.parallel',
    })
    // The GPU of a worker is pinned like any other profile's; the orch command comes first.
    const launch = planLaunch(pool, { port: 12345, gpu: '1', orch: { argv: ['/bin/orch'], env: { X: '1' } } })
    expect(launch.argv.slice(0, 2)).toEqual(['/bin/orch', 'model-worker'])
    expect(launch.env).toMatchObject({ CUDA_VISIBLE_DEVICES: '1', X: '1' })
    expect(launch.healthUrl).toBe('http://127.0.0.1:12345/health')
  })

  test('refusals: a missing model, keys of other profiles, two names, the OpenAI API, bad values', () => {
    expect(issuesOf({ profile: 'llamacpp' })).toEqual(['pools.0.model: required when profile is "llamacpp" (a .gguf file)'])
    expect(issuesOf({ profile: 'llamacpp', model: 'm.gguf', command: ['x'] })[0]).toMatch(/command: not used when profile is "llamacpp"/)
    expect(issuesOf({ profile: 'llamacpp', model: 'm.gguf', models: ['a', 'b'] })[0]).toMatch(/models: a llamacpp pool serves one model/)
    expect(issuesOf({ profile: 'llamacpp', model: 'm.gguf', api: 'openai' })[0]).toMatch(/api: llamacpp workers speak the Ollama API/)
    expect(issuesOf({ profile: 'ollama', model: 'm.gguf' })).toEqual(['pools.0.model: only for profile "llamacpp"'])
    expect(issuesOf({ profile: 'command', command: ['x'], llamacpp: { parallel: 2 } })).toEqual([
      'pools.0.llamacpp: only for profile "llamacpp"',
    ])
    expect(issuesOf({ profile: 'llamacpp', model: 'm.gguf', llamacpp: { gpu_layers: 'all' } })[0]).toMatch(
      /gpu_layers: expected "auto" or an integer >= 0/,
    )
    expect(issuesOf({ profile: 'llamacpp', model: 'm.gguf', llamacpp: { parallel: 0 } })[0]).toMatch(
      /parallel: expected a positive integer/,
    )
    expect(issuesOf({ profile: 'llamacpp', model: 'm.gguf', llamacpp: { context_size: 8 } })[0]).toMatch(/context_size/)
    expect(issuesOf({ profile: 'llamacpp', model: 'm.gguf', llamacpp: { flash: true } })[0]).toMatch(/flash/)
  })
})
