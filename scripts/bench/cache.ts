/**
 * Response cache hit latency: p50/p99 of single `get`s of a ~2 KB cached chat answer, for the sqlite and the
 * memory backend, against baselines measured in the same run on the same data: a bare `Map.get` of the JSON
 * text and a bare bun:sqlite primary-key SELECT on the cache file. Each sample times one call with
 * Bun.nanoseconds (its own cost, ~tens of ns, is in every row alike). Rounds interleave the cases so that
 * machine noise and GC hit each alike. Last line: one JSON object with the figures.
 * Usage: bun scripts/bench/cache.ts [--gets 100000] [--entries 1000]
 */
import { Database } from 'bun:sqlite'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { ChatRequest } from '../../src/backends/types.ts'
import { cacheKey, memoryCache, sqliteCache } from '../../src/cache/index.ts'

export interface CaseResult {
  name: string
  p50_us: number
  p99_us: number
  p999_us: number
  mean_us: number
}

export interface CacheBenchResult {
  gets: number
  entries: number
  value_bytes: number
  cases: CaseResult[]
  summary: { cache_hit_p50_ms: number; cache_hit_p99_ms: number; memory_hit_p99_ms: number; sqlite_baseline_p99_ms: number }
}

const ROUNDS = 10
const quantile = (sorted: Float64Array, q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number

function request(i: number): ChatRequest {
  return {
    model: 'llama3.2',
    messages: [
      { role: 'system', content: 'You are a careful assistant.' },
      { role: 'user', content: `Question ${i}: summarise the report in three sentences.` },
    ],
    options: { temperature: 0, num_ctx: 4096 },
  }
}

/** A final chat chunk of about 2 KB, as Ollama sends it. */
function answer(i: number) {
  const sentence = `Answer ${i}: the report finds that throughput doubled while latency stayed flat. `
  return {
    model: 'llama3.2',
    created_at: '2025-01-01T00:00:00.000Z',
    message: { role: 'assistant', content: sentence.repeat(Math.ceil(1800 / sentence.length)) },
    done: true,
    done_reason: 'stop',
    total_duration: 1_234_567_890,
    load_duration: 12_345_678,
    prompt_eval_count: 42,
    prompt_eval_duration: 98_765_432,
    eval_count: 400,
    eval_duration: 1_100_000_000,
  }
}

export function benchCacheHits(options: { gets?: number; entries?: number } = {}): CacheBenchResult {
  const gets = options.gets ?? 100_000
  const entries = options.entries ?? 1000
  const dir = mkdtempSync(join(tmpdir(), 'orch-bench-cache-'))
  const path = join(dir, 'llm_cache.db')
  const keys = Array.from({ length: entries }, (_, i) => cacheKey('chat', request(i)))
  const sqlite = sqliteCache(path, 86_400)
  const memory = memoryCache({ maxEntries: entries * 2, maxBytes: 1 << 30, ttlSeconds: 86_400 })
  const map = new Map<string, string>()
  keys.forEach((key, i) => {
    const entry = { kind: 'chat' as const, model: 'llama3.2', value: answer(i) }
    sqlite.set(key, entry)
    memory.set(key, entry)
    map.set(key, JSON.stringify(entry.value))
  })
  const raw = new Database(path, { readonly: true })
  const select = raw.prepare('SELECT kind, model, value, created_at, expires_at FROM cache_entries WHERE key = ?')

  // The last case hashes the request too, as a real lookup does; its request is found outside the timing.
  const requestOf = new Map(keys.map((key, i) => [key, request(i)]))
  const cases: Record<string, (key: string) => unknown> = {
    'Map.get (baseline)': (key) => map.get(key),
    'Map.get + JSON.parse (reference)': (key) => JSON.parse(map.get(key) as string),
    'bun:sqlite PK SELECT (baseline)': (key) => select.get(key),
    'memory cache get': (key) => memory.get(key),
    'sqlite cache get': (key) => sqlite.get(key),
    'cacheKey + sqlite cache get': (key) => sqlite.get(cacheKey('chat', requestOf.get(key) as ChatRequest)),
  }

  const samples = Object.fromEntries(Object.keys(cases).map((name) => [name, new Float64Array(gets)]))
  const perRound = Math.ceil(gets / ROUNDS)
  let sink = 0
  // One warm-up pass, then the measured rounds; keys are visited in a shuffled order.
  const order = Array.from({ length: gets }, (_, i) => keys[(i * 7919) % entries] as string)
  for (const fn of Object.values(cases)) for (let i = 0; i < Math.min(gets, 10_000); i++) sink += fn(order[i] as string) ? 1 : 0
  for (let round = 0; round < ROUNDS; round++) {
    const names = Object.keys(cases)
    const rotated = [...names.slice(round % names.length), ...names.slice(0, round % names.length)]
    for (const name of rotated) {
      const fn = cases[name] as (key: string) => unknown
      const out = samples[name] as Float64Array
      for (let i = round * perRound; i < Math.min(gets, (round + 1) * perRound); i++) {
        const key = order[i] as string
        const started = Bun.nanoseconds()
        const value = fn(key)
        out[i] = (Bun.nanoseconds() - started) / 1000
        if (value === undefined) throw new Error(`${name}: a miss on a key that was stored`)
        sink++
      }
    }
  }
  if (sink === 0) throw new Error('nothing measured')
  select.finalize()
  raw.close()
  sqlite.close()
  memory.close()
  rmSync(dir, { recursive: true, force: true })

  const results = Object.entries(samples).map(([name, s]) => {
    const sorted = s.sort()
    return {
      name,
      p50_us: quantile(sorted, 0.5),
      p99_us: quantile(sorted, 0.99),
      p999_us: quantile(sorted, 0.999),
      mean_us: sorted.reduce((a, b) => a + b, 0) / sorted.length,
    }
  })
  const by = (name: string) => results.find((r) => r.name === name) as CaseResult
  const ms = (us: number) => Number((us / 1000).toFixed(4))
  return {
    gets,
    entries,
    value_bytes: Buffer.byteLength(JSON.stringify(answer(0))),
    cases: results,
    summary: {
      cache_hit_p50_ms: ms(by('sqlite cache get').p50_us),
      cache_hit_p99_ms: ms(by('sqlite cache get').p99_us),
      memory_hit_p99_ms: ms(by('memory cache get').p99_us),
      sqlite_baseline_p99_ms: ms(by('bun:sqlite PK SELECT (baseline)').p99_us),
    },
  }
}

function print(result: CacheBenchResult): void {
  const baseline = (name: string) =>
    name.startsWith('memory') || name.startsWith('Map') ? 'Map.get (baseline)' : 'bun:sqlite PK SELECT (baseline)'
  const find = (name: string) => result.cases.find((c) => c.name === name) as CaseResult
  console.log(
    `cache hit latency: ${result.gets} gets over ${result.entries} entries of a ${result.value_bytes}-byte chat answer; µs per get; ratio of p99 to its baseline`,
  )
  console.log(`${'case'.padEnd(32)} ${'p50'.padStart(8)} ${'p99'.padStart(8)} ${'p99.9'.padStart(8)} ${'mean'.padStart(8)}   p99 ratio`)
  for (const c of result.cases) {
    const base = find(baseline(c.name))
    const ratio = base === c ? '' : `×${(c.p99_us / base.p99_us).toFixed(1)} ${base.name.split(' ')[0]}`
    const cells = [c.p50_us, c.p99_us, c.p999_us, c.mean_us].map((x) => x.toFixed(2).padStart(8))
    console.log(`${c.name.padEnd(32)} ${cells.join(' ')}   ${ratio}`)
  }
  console.log(`goal: sqlite cache hit p99 < 1 ms → ${result.summary.cache_hit_p99_ms < 1 ? 'met' : 'NOT met'}`)
  console.log(JSON.stringify(result.summary))
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { gets: { type: 'string', default: '100000' }, entries: { type: 'string', default: '1000' } },
  })
  print(benchCacheHits({ gets: Number(values.gets), entries: Number(values.entries) }))
}
