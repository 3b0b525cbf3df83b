import { describe, expect, test } from 'bun:test'
import type { ChatRequest, EmbedRequest, GenerateRequest } from '../../src/backends/types.ts'
import { cacheKey, canonicalRequest, isCacheable, modelAliases } from '../../src/cache/key.ts'

const chat = (extra: Partial<ChatRequest> = {}): ChatRequest => ({
  model: 'llama3.2',
  messages: [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Why is the sky blue?' },
  ],
  options: { temperature: 0, num_ctx: 4096 },
  ...extra,
})

describe('cacheKey', () => {
  test('is a sha256 hex digest, the same for the same request', () => {
    expect(cacheKey('chat', chat())).toMatch(/^[0-9a-f]{64}$/)
    expect(cacheKey('chat', chat())).toBe(cacheKey('chat', chat()))
  })

  test('ignores the order of option keys, at every depth', () => {
    const schema = { type: 'object', properties: { a: { type: 'string', minLength: 1 } } }
    const reordered = { properties: { a: { minLength: 1, type: 'string' } }, type: 'object' }
    const a = chat({ options: { temperature: 0, seed: 7, stop: ['\n'] }, format: schema })
    const b = chat({ options: { stop: ['\n'], seed: 7, temperature: 0 }, format: reordered })
    expect(cacheKey('chat', a)).toBe(cacheKey('chat', b))
  })

  test('an undefined field is the same as a missing one; empty options the same as none', () => {
    const base = chat({ options: { temperature: 0 } })
    expect(cacheKey('chat', { ...base, format: undefined, options: { temperature: 0, seed: undefined } })).toBe(cacheKey('chat', base))
    const noOptions: ChatRequest = { model: 'm', messages: [{ role: 'user', content: 'hi' }] }
    expect(cacheKey('chat', { ...noOptions, options: {} })).toBe(cacheKey('chat', noOptions))
  })

  test('keep_alive and stream do not change the key', () => {
    const withDelivery = { ...chat(), keep_alive: '10m', stream: false } as ChatRequest
    expect(cacheKey('chat', withDelivery)).toBe(cacheKey('chat', chat()))
    expect(canonicalRequest('chat', withDelivery)).not.toContain('keep_alive')
  })

  test('anything that changes the answer changes the key', () => {
    const base = cacheKey('chat', chat())
    const variants: ChatRequest[] = [
      chat({ model: 'llama3.2:1b' }),
      chat({ messages: [{ role: 'user', content: 'Why is the sky blue?' }] }),
      chat({ messages: [...chat().messages].reverse() }),
      chat({ options: { temperature: 0, num_ctx: 8192 } }),
      chat({ options: { temperature: 0, num_ctx: 4096, seed: 1 } }),
      chat({ format: 'json' }),
      chat({ tools: [{ type: 'function', function: { name: 'now' } }] }),
      chat({ think: true }),
    ]
    const keys = variants.map((r) => cacheKey('chat', r))
    for (const key of keys) expect(key).not.toBe(base)
    expect(new Set(keys).size).toBe(keys.length)
  })

  test('the kind is part of the key; generate and embed fields count', () => {
    const gen: GenerateRequest = { model: 'm', prompt: 'hi', options: { temperature: 0 } }
    expect(cacheKey('generate', gen)).not.toBe(cacheKey('chat', gen as unknown as ChatRequest))
    expect(cacheKey('generate', { ...gen, system: 'terse' })).not.toBe(cacheKey('generate', gen))
    expect(cacheKey('generate', { ...gen, prompt: 'hello' })).not.toBe(cacheKey('generate', gen))
    const embed: EmbedRequest = { model: 'nomic-embed-text', input: ['a', 'b'] }
    expect(cacheKey('embed', { ...embed, input: ['b', 'a'] })).not.toBe(cacheKey('embed', embed))
    expect(cacheKey('embed', { ...embed, input: 'a' })).not.toBe(cacheKey('embed', { ...embed, input: ['a'] }))
  })

  test('the canonical form is pinned (changing it must bump KEY_VERSION)', () => {
    const text = canonicalRequest('generate', { prompt: 'p', model: 'm', options: { seed: 1, temperature: 0 }, keep_alive: 0 })
    expect(text).toBe('{"kind":"generate","model":"m","options":{"seed":1,"temperature":0},"prompt":"p","v":1}')
  })
})

describe('isCacheable', () => {
  const gen = (options?: GenerateRequest['options']): GenerateRequest => ({ model: 'm', prompt: 'p', options })

  test('deterministic: temperature 0 or a numeric seed', () => {
    expect(isCacheable(gen({ temperature: 0 }), 'deterministic')).toBe(true)
    expect(isCacheable(gen({ temperature: 0.8, seed: 42 }), 'deterministic')).toBe(true)
    expect(isCacheable(chat({ options: { seed: 0 } }), 'deterministic')).toBe(true)
    expect(isCacheable(gen({ temperature: 0.7 }), 'deterministic')).toBe(false)
    expect(isCacheable(gen(), 'deterministic')).toBe(false)
    expect(isCacheable(gen({ seed: '42' as unknown as number }), 'deterministic')).toBe(false)
    expect(isCacheable(gen({ seed: Number.NaN }), 'deterministic')).toBe(false)
  })

  test('embeddings are always deterministic; always caches everything', () => {
    expect(isCacheable({ model: 'e', input: 'x' }, 'deterministic')).toBe(true)
    expect(isCacheable(gen({ temperature: 1 }), 'always')).toBe(true)
    expect(isCacheable(chat({ options: undefined }), 'always')).toBe(true)
  })
})

describe('modelAliases', () => {
  test('a name without a tag and its :latest are one model; other tags stand alone', () => {
    expect(modelAliases('llama3.2')).toEqual(['llama3.2', 'llama3.2:latest'])
    expect(modelAliases('llama3.2:latest')).toEqual(['llama3.2:latest', 'llama3.2'])
    expect(modelAliases('qwen3:8b')).toEqual(['qwen3:8b', 'qwen3:8b'])
  })
})
