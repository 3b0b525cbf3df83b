import { Database } from 'bun:sqlite'
import { afterEach, describe, expect, test } from 'bun:test'
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  type CachingConfig,
  createCache,
  memoryCache,
  type LocalResponseCache as ResponseCache,
  sqliteCache,
} from '../../src/cache/index.ts'
import { defaultConfig } from '../../src/config/schema.ts'
import { OrchError } from '../../src/core/errors.ts'
import { tempDir } from '../helpers/cli.ts'

const dirs: Array<{ cleanup: () => void }> = []
const open: ResponseCache[] = []
function dir(): string {
  const d = tempDir('orch-cache-')
  dirs.push(d)
  return d.path
}
function track<T extends ResponseCache>(cache: T): T {
  open.push(cache)
  return cache
}
afterEach(() => {
  for (const cache of open.splice(0)) cache.close()
  for (const d of dirs.splice(0)) d.cleanup()
})

const answer = (content: string) => ({
  model: 'llama3.2',
  created_at: '2025-01-01T00:00:00Z',
  message: { role: 'assistant', content },
  done: true,
})
const entry = (text = 'Rayleigh scattering.', model = 'llama3.2') => ({ kind: 'chat' as const, model, value: answer(text) })
const content = (cache: ResponseCache, key: string) => (cache.get(key)?.value as ReturnType<typeof answer> | undefined)?.message.content

/** A clock the test moves by hand. */
function clock(start = 1_700_000_000_000) {
  let t = start
  return { now: () => t, advance: (ms: number) => (t += ms) }
}

/** Behaviour both backends share. */
function shared(name: string, make: (now: () => number) => ResponseCache) {
  describe(`${name} cache`, () => {
    test('counts misses, sets and hits; returns what was stored', () => {
      const c = clock()
      const cache = track(make(c.now))
      expect(cache.get('k')).toBeUndefined()
      cache.set('k', entry())
      const hit = cache.get('k')
      expect(hit).toEqual({ ...entry(), created_at: c.now() })
      cache.get('k')
      expect(cache.stats()).toMatchObject({ entries: 1, hits: 2, misses: 1, sets: 1, evictions: 0, expired: 0 })
      expect(cache.stats().bytes).toBe(Buffer.byteLength(JSON.stringify(entry().value)))
    })

    test('a caller changing its answer does not change the cached one', () => {
      const cache = track(make(Date.now))
      cache.set('k', entry('original'))
      const first = cache.get('k')?.value as ReturnType<typeof answer>
      first.message.content = 'changed'
      expect(content(cache, 'k')).toBe('original')
    })

    test('an entry past its TTL is a miss and is dropped', () => {
      const c = clock()
      const cache = track(make(c.now))
      cache.set('k', entry())
      c.advance(59_999)
      expect(cache.get('k')).toBeDefined()
      c.advance(1)
      expect(cache.get('k')).toBeUndefined()
      expect(cache.stats()).toMatchObject({ entries: 0, bytes: 0, hits: 1, misses: 1, expired: 1 })
    })

    test('setting a key again replaces its entry and restarts its TTL', () => {
      const c = clock()
      const cache = track(make(c.now))
      cache.set('k', entry('one'))
      c.advance(50_000)
      cache.set('k', entry('two'))
      c.advance(50_000)
      expect(content(cache, 'k')).toBe('two')
      expect(cache.stats()).toMatchObject({ entries: 1, sets: 2, bytes: Buffer.byteLength(JSON.stringify(answer('two'))) })
    })

    test('clear: all, expired only, by model (with or without :latest)', () => {
      const c = clock()
      const cache = track(make(c.now))
      cache.set('old', entry('a', 'llama3.2'))
      c.advance(61_000)
      cache.set('new', entry('b', 'llama3.2:latest'))
      cache.set('other', entry('c', 'qwen3:8b'))
      expect(cache.stats()).toMatchObject({ entries: 3, oldest_at: c.now() - 61_000, newest_at: c.now() })
      expect(cache.clear({ expiredOnly: true })).toBe(1)
      expect(cache.stats()).toMatchObject({ entries: 2, expired: 1 })
      expect(cache.clear({ model: 'llama3.2' })).toBe(1)
      expect(cache.get('other')).toBeDefined()
      expect(cache.clear({ model: 'qwen3' })).toBe(0)
      expect(cache.clear()).toBe(1)
      expect(cache.stats()).toMatchObject({ entries: 0, bytes: 0, oldest_at: null, newest_at: null })
    })
  })
}

shared('memory', (now) => memoryCache({ maxEntries: 100, maxBytes: 1 << 20, ttlSeconds: 60, now }))
shared('sqlite', (now) => sqliteCache(join(dir(), 'cache.db'), 60, now))

describe('memory cache', () => {
  test('evicts the least recently used entry beyond max_entries', () => {
    const cache = memoryCache({ maxEntries: 2, maxBytes: 1 << 20, ttlSeconds: 60 })
    cache.set('a', entry('a'))
    cache.set('b', entry('b'))
    cache.get('a') // a is now more recent than b
    cache.set('c', entry('c'))
    expect(cache.get('b')).toBeUndefined()
    expect(cache.get('a')).toBeDefined()
    expect(cache.get('c')).toBeDefined()
    expect(cache.stats()).toMatchObject({ entries: 2, evictions: 1 })
  })

  test('evicts beyond max_bytes, and never keeps an answer larger than the whole budget', () => {
    const size = Buffer.byteLength(JSON.stringify(answer('x'.repeat(100))))
    const cache = memoryCache({ maxEntries: 100, maxBytes: size * 3, ttlSeconds: 60 })
    for (const k of ['a', 'b', 'c', 'd']) cache.set(k, entry('x'.repeat(100)))
    expect(cache.stats()).toMatchObject({ entries: 3, bytes: size * 3, evictions: 1 })
    expect(cache.get('a')).toBeUndefined()
    cache.set('huge', entry('x'.repeat(size * 3)))
    expect(cache.get('huge')).toBeUndefined()
    expect(cache.stats()).toMatchObject({ entries: 3, bytes: size * 3 })
  })
})

describe('sqlite cache', () => {
  test('creates its directory, uses WAL, and a hit is one primary-key search', () => {
    const path = join(dir(), 'deep', 'er', 'llm_cache.db')
    track(sqliteCache(path, 60))
    expect(existsSync(path)).toBe(true)
    const db = new Database(path, { readonly: true })
    expect(db.query('PRAGMA journal_mode').get()).toEqual({ journal_mode: 'wal' })
    const plan = db.query('EXPLAIN QUERY PLAN SELECT kind, model, value, created_at, expires_at FROM cache_entries WHERE key = ?').all('k')
    expect(JSON.stringify(plan)).toMatch(/SEARCH cache_entries USING INDEX sqlite_autoindex_cache_entries_1 \(key=\?\)/)
    db.close()
  })

  test('entries and counters survive a reopen; counters reach the file on close, not per hit', () => {
    const path = join(dir(), 'cache.db')
    const first = sqliteCache(path, 60)
    first.set('k', entry())
    first.get('k')
    first.get('missing')
    const counters = () => {
      const db = new Database(path)
      const row = db.query('SELECT hits, misses, sets FROM cache_counters').get()
      db.close()
      return row
    }
    expect(counters()).toEqual({ hits: 0, misses: 0, sets: 0 })
    first.close()
    expect(counters()).toEqual({ hits: 1, misses: 1, sets: 1 })
    const second = track(sqliteCache(path, 60))
    expect(second.get('k')?.value).toEqual(entry().value)
    expect(second.stats()).toMatchObject({ entries: 1, hits: 2, misses: 1, sets: 1, path })
  })

  test('counters are flushed on an interval, and processes sharing the file add up', async () => {
    const path = join(dir(), 'cache.db')
    const serve = track(sqliteCache(path, 60))
    const cli = track(sqliteCache(path, 60))
    serve.set('k', entry())
    serve.get('k')
    expect(cli.stats()).toMatchObject({ entries: 1, hits: 0, sets: 0 })
    await Bun.sleep(1300)
    cli.get('k')
    expect(cli.stats()).toMatchObject({ hits: 2, sets: 1 })
  })

  test('expired rows nobody asks for are swept', () => {
    const path = join(dir(), 'cache.db')
    const c = clock()
    const cache = sqliteCache(path, 60, c.now)
    cache.set('a', entry())
    cache.set('b', entry())
    c.advance(120_000)
    cache.close() // the final flush sweeps: a minute has passed
    const reopened = track(sqliteCache(path, 60, c.now))
    expect(reopened.stats()).toMatchObject({ entries: 0, expired: 2 })
  })

  test('a corrupt file is an OrchError that names the path and says it can be deleted', () => {
    const path = join(dir(), 'llm_cache.db')
    writeFileSync(path, 'this is not a database, just some text '.repeat(200))
    const error = (() => {
      try {
        sqliteCache(path, 60)
      } catch (e) {
        return e
      }
    })()
    expect(error).toBeInstanceOf(OrchError)
    expect((error as OrchError).code).toBe('E_CACHE_DB')
    expect((error as OrchError).message).toContain(path)
    expect((error as OrchError).hint).toContain(`delete ${path}`)
  })

  test('a sqlite file of another program is refused', () => {
    const path = join(dir(), 'other.db')
    const db = new Database(path)
    db.exec('CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT); PRAGMA user_version = 1')
    db.close()
    expect(() => sqliteCache(path, 60)).toThrow(/not a cache file/)
  })
})

describe('createCache', () => {
  const caching = (over: Partial<CachingConfig>): CachingConfig => ({
    ...defaultConfig().infrastructure_system.llm_orchestration.caching,
    ...over,
  })

  test('sqlite by default, at cache_path relative to cwd', () => {
    const cwd = dir()
    const cache = track(createCache(caching({}), cwd) as ResponseCache)
    expect(cache.stats()).toMatchObject({ backend: 'sqlite', path: join(cwd, 'llm_cache.db') })
    expect(existsSync(join(cwd, 'llm_cache.db'))).toBe(true)
  })

  test('memory, bounded by the configured limits', () => {
    const cache = track(createCache(caching({ cache_backend: 'memory', max_entries: 1 })) as ResponseCache)
    cache.set('a', entry())
    cache.set('b', entry())
    expect(cache.stats()).toMatchObject({ backend: 'memory', entries: 1, evictions: 1 })
  })

  test('disabled: no cache; redis: a usage error that says what to use instead', () => {
    expect(createCache(caching({ enabled: false }))).toBeUndefined()
    try {
      createCache(caching({ cache_backend: 'redis' }))
      throw new Error('expected an error')
    } catch (error) {
      expect(error).toBeInstanceOf(OrchError)
      expect((error as OrchError).exitCode).toBe(2)
      expect((error as OrchError).hint).toMatch(/sqlite .* or memory/)
    }
  })
})
