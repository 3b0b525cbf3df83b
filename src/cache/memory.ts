/**
 * The in-process response cache: an LRU (a Map's insertion order, a hit moves the entry to the end) bounded
 * by entries and by bytes of stored JSON. Values are kept as JSON text and parsed on each hit, so a caller
 * that changes the answer it got cannot change what the next caller gets.
 */

import type { CacheKind } from './key.ts'
import { modelAliases } from './key.ts'
import type { CacheStats, ClearOptions, LocalResponseCache } from './types.ts'

export interface MemoryCacheOptions {
  maxEntries: number
  maxBytes: number
  ttlSeconds: number
  now?: () => number
}

interface Slot {
  kind: CacheKind
  model: string
  json: string
  bytes: number
  created_at: number
  expires_at: number
}

export function memoryCache(options: MemoryCacheOptions): LocalResponseCache {
  const now = options.now ?? Date.now
  const ttlMs = options.ttlSeconds * 1000
  const slots = new Map<string, Slot>()
  const counters = { hits: 0, misses: 0, sets: 0, evictions: 0, expired: 0 }
  let bytes = 0

  function remove(key: string, slot: Slot): void {
    slots.delete(key)
    bytes -= slot.bytes
  }

  function evict(): void {
    while (slots.size > options.maxEntries || bytes > options.maxBytes) {
      const oldest = slots.entries().next().value
      if (oldest === undefined) return
      remove(oldest[0], oldest[1])
      counters.evictions++
    }
  }

  return {
    get(key) {
      const slot = slots.get(key)
      if (slot === undefined) {
        counters.misses++
        return undefined
      }
      if (slot.expires_at <= now()) {
        remove(key, slot)
        counters.misses++
        counters.expired++
        return undefined
      }
      slots.delete(key)
      slots.set(key, slot)
      counters.hits++
      return { kind: slot.kind, model: slot.model, value: JSON.parse(slot.json), created_at: slot.created_at }
    },

    set(key, entry) {
      const json = JSON.stringify(entry.value)
      if (json === undefined) throw new TypeError('a cached value must be JSON')
      const size = Buffer.byteLength(json)
      const previous = slots.get(key)
      if (previous) remove(key, previous)
      // An answer larger than the whole cache would only push everything else out and then itself.
      if (size > options.maxBytes) return
      const time = now()
      slots.set(key, { kind: entry.kind, model: entry.model, json, bytes: size, created_at: time, expires_at: time + ttlMs })
      bytes += size
      counters.sets++
      evict()
    },

    stats(): CacheStats {
      let oldest: number | null = null
      let newest: number | null = null
      for (const slot of slots.values()) {
        if (oldest === null || slot.created_at < oldest) oldest = slot.created_at
        if (newest === null || slot.created_at > newest) newest = slot.created_at
      }
      return { backend: 'memory', entries: slots.size, bytes, ...counters, oldest_at: oldest, newest_at: newest }
    },

    clear(clearOptions: ClearOptions = {}) {
      const time = now()
      const models = clearOptions.model === undefined ? undefined : modelAliases(clearOptions.model)
      let removed = 0
      for (const [key, slot] of slots) {
        if (clearOptions.expiredOnly && slot.expires_at > time) continue
        if (models && !models.includes(slot.model)) continue
        remove(key, slot)
        removed++
      }
      if (clearOptions.expiredOnly) counters.expired += removed
      return removed
    },

    close() {
      slots.clear()
      bytes = 0
    },
  }
}
