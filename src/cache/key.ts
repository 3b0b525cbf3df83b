/**
 * What makes two model requests the same for the response cache: a sha256 of the canonical request. Keys
 * are sorted at every depth and undefined values dropped, so `{ a, b }`, `{ b, a }` and `{ a, b, c: undefined }`
 * hash alike; `keep_alive` and `stream` change how an answer is delivered, not what it says, and are left out.
 */
import { createHash } from 'node:crypto'
import type { ChatRequest, EmbedRequest, GenerateRequest } from '../backends/types.ts'

export type CacheKind = 'chat' | 'generate' | 'embed'
export type CacheableRequest = ChatRequest | GenerateRequest | EmbedRequest
export type CacheMode = 'deterministic' | 'always'

/** Bumped when the canonical form changes, so old entries stop matching instead of matching wrongly. */
const KEY_VERSION = 1
const IGNORED = new Set(['keep_alive', 'stream'])

/** A JSON-ready copy with object keys sorted recursively; undefined, functions and symbols behave as in JSON. */
export function canonicalize(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return canonicalize((value as { toJSON: () => unknown }).toJSON())
  if (Array.isArray(value)) return value.map((item) => (isDropped(item) ? null : canonicalize(item)))
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(value).sort()) {
    const item = (value as Record<string, unknown>)[key]
    if (!isDropped(item)) out[key] = canonicalize(item)
  }
  return out
}

const isDropped = (value: unknown) => value === undefined || typeof value === 'function' || typeof value === 'symbol'

/** The canonical JSON text a cache key hashes; exported for debugging and tests. */
export function canonicalRequest(kind: CacheKind, request: CacheableRequest): string {
  const fields: Record<string, unknown> = { v: KEY_VERSION, kind }
  for (const [key, value] of Object.entries(request)) {
    if (IGNORED.has(key) || key === 'v' || key === 'kind') continue
    fields[key] = value
  }
  const canonical = canonicalize(fields) as Record<string, unknown>
  // No options and empty options ask the model the same thing.
  if (isEmptyObject(canonical.options)) delete canonical.options
  return JSON.stringify(canonical)
}

const isEmptyObject = (value: unknown) =>
  value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value as object).length === 0

export function cacheKey(kind: CacheKind, request: CacheableRequest): string {
  return createHash('sha256').update(canonicalRequest(kind, request)).digest('hex')
}

/** Which kind of call a request is, from its shape: `input` embeds, `prompt` generates, `messages` chats. */
export function requestKind(request: CacheableRequest): CacheKind {
  if ('messages' in request) return 'chat'
  if ('prompt' in request) return 'generate'
  return 'embed'
}

/**
 * Whether a response may be cached. `always` caches everything. `deterministic` caches only what a model
 * answers the same way twice: temperature 0 or a fixed seed; embeddings always are.
 */
export function isCacheable(request: CacheableRequest, mode: CacheMode, kind: CacheKind = requestKind(request)): boolean {
  if (mode === 'always' || kind === 'embed') return true
  const options = request.options
  if (!options) return false
  return options.temperature === 0 || (typeof options.seed === 'number' && Number.isFinite(options.seed))
}

/** Ollama reads `llama3.2` as `llama3.2:latest`; clearing one name clears entries stored under either. */
export function modelAliases(model: string): [string, string] {
  if (model.endsWith(':latest')) return [model, model.slice(0, -':latest'.length)]
  if (model.includes(':')) return [model, model]
  return [model, `${model}:latest`]
}
