/**
 * Key paths (`pools[1].pool_size`, `models.ollama["llama3.2"].context`) and the plain-data operations the
 * resolver needs on them: read, write, list the leaves, and merge layers (objects merge, arrays replace).
 */

export type PathSegment = string | number

/** Keys that would reach Object.prototype if merged naively; refused in every file and path. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype'])

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

export function formatPath(segments: readonly PathSegment[]): string {
  let out = ''
  for (const segment of segments) {
    if (typeof segment === 'number') out += `[${segment}]`
    else if (PLAIN_KEY.test(segment)) out += out === '' ? segment : `.${segment}`
    else out += `[${JSON.stringify(segment)}]`
  }
  return out
}

/** The inverse of formatPath; undefined when the text is not a path. */
export function parsePath(path: string): PathSegment[] | undefined {
  const segments: PathSegment[] = []
  const token = /\.?([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/y
  let at = 0
  while (at < path.length) {
    token.lastIndex = at
    const match = token.exec(path)
    if (!match || (at === 0 && path.startsWith('.'))) return undefined
    if (match[1] !== undefined) segments.push(match[1])
    else if (match[2] !== undefined) segments.push(Number(match[2]))
    else segments.push(JSON.parse(match[3] as string) as string)
    at = token.lastIndex
  }
  return segments.length > 0 ? segments : undefined
}

export function getPath(root: unknown, segments: readonly PathSegment[]): unknown {
  let node = root
  for (const segment of segments) {
    if (node === null || typeof node !== 'object') return undefined
    node = (node as Record<PathSegment, unknown>)[segment]
  }
  return node
}

/** Set a value, creating objects (or arrays, for numeric segments) on the way. */
export function setPath(root: Record<string, unknown>, segments: readonly PathSegment[], value: unknown): void {
  let node: Record<PathSegment, unknown> = root
  segments.forEach((segment, index) => {
    if (typeof segment === 'string' && FORBIDDEN_KEYS.has(segment)) throw new Error(`refused key "${segment}"`)
    if (index === segments.length - 1) {
      node[segment] = value
      return
    }
    const next = node[segment]
    if (next === null || typeof next !== 'object') node[segment] = typeof segments[index + 1] === 'number' ? [] : {}
    node = node[segment] as Record<PathSegment, unknown>
  })
}

/**
 * Leaves of plain data: scalars, lists of scalars and empty containers are leaves; objects and lists of
 * objects are walked into.
 */
export function leafPaths(value: unknown, prefix: PathSegment[] = []): PathSegment[][] {
  if (isPlainObject(value)) {
    const keys = Object.keys(value)
    if (keys.length === 0) return [prefix]
    return keys.flatMap((key) => leafPaths(value[key], [...prefix, key]))
  }
  if (Array.isArray(value) && value.length > 0 && value.some((item) => isPlainObject(item) || Array.isArray(item))) {
    return value.flatMap((item, index) => leafPaths(item, [...prefix, index]))
  }
  return [prefix]
}

/**
 * Merge `layer` into `target` in place (objects merge, everything else replaces) and return the paths the
 * layer replaced, so the caller can record where those values came from.
 */
export function mergeInto(target: Record<string, unknown>, layer: Record<string, unknown>, prefix: PathSegment[] = []): PathSegment[][] {
  const replaced: PathSegment[][] = []
  for (const [key, value] of Object.entries(layer)) {
    const current = target[key]
    if (isPlainObject(current) && isPlainObject(value)) {
      replaced.push(...mergeInto(current, value, [...prefix, key]))
    } else {
      target[key] = structuredClone(value)
      replaced.push([...prefix, key])
    }
  }
  return replaced
}
