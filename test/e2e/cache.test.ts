import { afterAll, describe, expect, test } from 'bun:test'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { sqliteCache } from '../../src/cache/index.ts'
import { runCli, tempDir } from '../helpers/cli.ts'

const dirs: Array<{ cleanup: () => void }> = []
afterAll(() => {
  for (const d of dirs) d.cleanup()
})
function cwd(yaml?: string): string {
  const d = tempDir('orch-cache-e2e-')
  dirs.push(d)
  if (yaml !== undefined) writeFileSync(join(d.path, 'orch.yaml'), yaml)
  return d.path
}

const DAY = 86_400_000
const answer = (content: string, model: string) => ({
  kind: 'chat' as const,
  model,
  value: { model, created_at: '2025-01-01T00:00:00Z', message: { role: 'assistant', content }, done: true },
})

/** ./llm_cache.db with 2 fresh llama3.2 entries, 1 fresh qwen3 entry and 2 written two days ago (expired). */
function seed(dir: string, file = 'llm_cache.db'): void {
  const path = join(dir, file)
  const old = sqliteCache(path, 86_400, () => Date.now() - 2 * DAY)
  old.set('old-1', answer('stale one', 'llama3.2'))
  old.set('old-2', answer('stale two', 'qwen3:8b'))
  old.close()
  const cache = sqliteCache(path, 86_400)
  cache.set('a', answer('Rayleigh scattering.', 'llama3.2'))
  cache.set('b', answer('Because of the atmosphere.', 'llama3.2:latest'))
  cache.set('c', answer('Short waves scatter more.', 'qwen3:8b'))
  for (const key of ['a', 'a', 'b', 'c', 'missing']) cache.get(key)
  cache.close()
}

describe('orch cache stats', () => {
  test('--json: entries, bytes, counters with hit rate, oldest and newest, from the file in the working directory', async () => {
    const dir = cwd()
    seed(dir)
    const result = await runCli(['cache', 'stats', '--json'], { cwd: dir })
    expect(result.code).toBe(0)
    const out = result.json()
    expect(out).toMatchObject({
      backend: 'sqlite',
      enabled: true,
      mode: 'deterministic',
      ttl_seconds: 86_400,
      path: join(dir, 'llm_cache.db'),
      exists: true,
      entries: 5,
      hits: 4,
      misses: 1,
      hit_rate: 0.8,
      sets: 5,
      evictions: 0,
      expired: 0,
    })
    expect(out.bytes).toBeGreaterThan(5 * 80)
    expect(out.file_bytes).toBeGreaterThan(out.bytes)
    expect(Date.parse(out.newest_at) - Date.parse(out.oldest_at)).toBeGreaterThan(DAY)
  })

  test('text: a short report people can read', async () => {
    const dir = cwd()
    seed(dir)
    const result = await runCli(['cache', 'stats'], { cwd: dir })
    expect(result.code).toBe(0)
    expect(result.stdout).toContain('Response cache llm_cache.db (sqlite, mode deterministic, ttl 86400s)')
    expect(result.stdout).toMatch(/entries\s+5 \(/)
    expect(result.stdout).toContain('4 hits, 1 misses, hit rate 80.0%')
    expect(result.stdout).toMatch(/oldest\s+\d{4}-\d\d-\d\dT/)
  })

  test('no cache file yet: empty figures, and the file is not created', async () => {
    const dir = cwd()
    const result = await runCli(['cache', 'stats', '--json'], { cwd: dir })
    expect(result.code).toBe(0)
    expect(result.json()).toMatchObject({ exists: false, entries: 0, hits: 0, hit_rate: null, oldest_at: null })
    expect(existsSync(join(dir, 'llm_cache.db'))).toBe(false)
  })

  test('follows cache_path from the config', async () => {
    const dir = cwd('infrastructure_system:\n  llm_orchestration:\n    caching:\n      cache_path: ./var/responses.db\n')
    mkdirSync(join(dir, 'var'))
    seed(dir, 'var/responses.db')
    const result = await runCli(['cache', 'stats', '--json'], { cwd: dir })
    expect(result.json()).toMatchObject({ path: join(dir, 'var', 'responses.db'), entries: 5 })
  })

  test('memory backend: says plainly there is no file', async () => {
    const dir = cwd('infrastructure_system:\n  llm_orchestration:\n    caching:\n      cache_backend: memory\n')
    const text = await runCli(['cache', 'stats'], { cwd: dir })
    expect(text.code).toBe(0)
    expect(text.stdout).toContain('lives inside a running `orch serve` and has no file')
    const json = await runCli(['cache', 'stats', '--json'], { cwd: dir })
    expect(json.json()).toMatchObject({ backend: 'memory', path: null })
  })

  test('a corrupt cache file: exit 1, the path, and the advice to delete it', async () => {
    const dir = cwd()
    writeFileSync(join(dir, 'llm_cache.db'), 'garbage '.repeat(1000))
    const result = await runCli(['cache', 'stats'], { cwd: dir })
    expect(result.code).toBe(1)
    expect(result.stderr).toContain(join(dir, 'llm_cache.db'))
    expect(result.stderr).toMatch(/hint: it is only a cache: delete /)
  })
})

describe('orch cache clear', () => {
  test('--expired, then --model, then everything; each says how many were removed', async () => {
    const dir = cwd()
    seed(dir)
    const expired = await runCli(['cache', 'clear', '--expired', '--json'], { cwd: dir })
    expect(expired.code).toBe(0)
    expect(expired.json()).toEqual({ path: join(dir, 'llm_cache.db'), removed: 2, expired_only: true, model: null })

    const model = await runCli(['cache', 'clear', '--model', 'llama3.2'], { cwd: dir })
    expect(model.code).toBe(0)
    expect(model.stdout.trim()).toBe('removed 2 llama3.2 entries from llm_cache.db')

    const all = await runCli(['cache', 'clear'], { cwd: dir })
    expect(all.stdout.trim()).toBe('removed 1 entry from llm_cache.db')

    const stats = (await runCli(['cache', 'stats', '--json'], { cwd: dir })).json()
    expect(stats).toMatchObject({ entries: 0, expired: 2, hits: 4 })
  })

  test('no cache file: nothing removed, nothing created', async () => {
    const dir = cwd()
    const result = await runCli(['cache', 'clear', '--json'], { cwd: dir })
    expect(result.code).toBe(0)
    expect(result.json()).toMatchObject({ removed: 0 })
    expect(existsSync(join(dir, 'llm_cache.db'))).toBe(false)
  })

  test('memory backend and redis backend: exit 2 with a hint', async () => {
    const memory = cwd('infrastructure_system:\n  llm_orchestration:\n    caching:\n      cache_backend: memory\n')
    const m = await runCli(['cache', 'clear'], { cwd: memory })
    expect(m.code).toBe(2)
    expect(m.stderr).toContain('restarting orch serve empties a memory cache')
    const redis = cwd('infrastructure_system:\n  llm_orchestration:\n    caching:\n      cache_backend: redis\n')
    const r = await runCli(['cache', 'stats', '--json'], { cwd: redis })
    // Refused by the config verdict itself, naming the key and what to use instead.
    expect(r.code).toBe(2)
    expect(r.json().error).toMatchObject({ code: 'E_CONFIG' })
    expect(r.json().error.message).toContain(
      'cache_backend: redis needs infrastructure_system.distributed_simulation.event_bus_type: redis',
    )
  })

  test('orch cache --help lists its subcommands', async () => {
    const result = await runCli(['cache', '--help'], { cwd: cwd() })
    expect(result.code).toBe(0)
    expect(result.stdout).toContain('stats')
    expect(result.stdout).toContain('clear')
  })
})
