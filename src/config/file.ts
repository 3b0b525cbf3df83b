/**
 * Reading one config file safely: a size cap, YAML (which also reads JSON; `//` and `/* *\/` comments are
 * allowed in .json files), no anchors or aliases (a small file must not expand into a huge one), no keys
 * that reach Object.prototype, no tags outside YAML 1.2's core schema, no parser warning let pass, and a
 * way back from a key path to the line and column where it is written.
 */
import { readFileSync, statSync } from 'node:fs'
import { extname } from 'node:path'
import { isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseDocument, visit } from 'yaml'
import type { ConfigIssue } from '../core/errors.ts'
import { FORBIDDEN_KEYS, formatPath, isPlainObject, type PathSegment } from './paths.ts'

export const MAX_CONFIG_BYTES = 1024 * 1024

export interface Position {
  line: number
  column: number
  /** How many leading segments of the asked path exist in the file. */
  depth: number
}

export interface ConfigDocument {
  file: string
  data: Record<string, unknown>
  /** Where the deepest existing part of the path is written; undefined when not even its first key is. */
  locate(segments: readonly PathSegment[]): Position | undefined
}

type Document = ReturnType<typeof parseDocument>
type At = (offset: number) => Omit<Position, 'depth'>

const YAML_TAG_PREFIX = 'tag:yaml.org,2002:'
/**
 * The tags of YAML 1.2's core schema, the only ones a config may carry (`!`, the non-specific tag, means a
 * plain string). Anything else (`!!python/object/apply:...`, `!custom`, YAML 1.1's `!!binary`, `!!set`,
 * `!!timestamp`) is refused: the yaml package keeps an unknown tag's value as plain data with a mere
 * warning, so a file written for another loader would silently mean something else here.
 */
const CORE_TAGS: ReadonlySet<string> = new Set([
  '!',
  ...['map', 'seq', 'str', 'null', 'bool', 'int', 'float'].map((t) => YAML_TAG_PREFIX + t),
])
const CORE_TAGS_SHOWN = '!!str, !!int, !!float, !!bool, !!null, !!seq, !!map'

/** A tag as it is usually written: `!!binary` rather than `tag:yaml.org,2002:binary`. */
const shownTag = (tag: string) => (tag.startsWith(YAML_TAG_PREFIX) ? `!!${tag.slice(YAML_TAG_PREFIX.length)}` : tag)

/**
 * Core schema only: `schema: 'core'` also holds against a `%YAML 1.1` directive, and `resolveKnownTags:
 * false` stops the yaml package from resolving YAML 1.1's `!!binary`, `!!timestamp`, `!!set` and friends,
 * which it otherwise does even in the core schema.
 */
const PARSE_OPTIONS = { schema: 'core', resolveKnownTags: false, prettyErrors: false, uniqueKeys: true } as const

/** Blank out JSONC comments, keeping every offset (and so every line:column) where it was. */
export function stripJsonComments(text: string): string {
  let out = ''
  let i = 0
  while (i < text.length) {
    const c = text[i] as string
    if (c === '"') {
      const end = endOfString(text, i)
      out += text.slice(i, end)
      i = end
    } else if (c === '/' && (text[i + 1] === '/' || text[i + 1] === '*')) {
      const block = text[i + 1] === '*'
      const close = block ? text.indexOf('*/', i + 2) : text.indexOf('\n', i)
      const end = close < 0 ? text.length : block ? close + 2 : close
      out += text.slice(i, end).replace(/[^\n]/g, ' ')
      i = end
    } else {
      out += c
      i++
    }
  }
  return out
}

function endOfString(text: string, start: number): number {
  let i = start + 1
  while (i < text.length && text[i] !== '"' && text[i] !== '\n') i += text[i] === '\\' ? 2 : 1
  return Math.min(i + 1, text.length)
}

/** The key path of a node from visit()'s ancestor list. */
function pathOf(ancestors: readonly unknown[], node: unknown): PathSegment[] {
  const segments: PathSegment[] = []
  const chain = [...ancestors, node]
  chain.forEach((item, index) => {
    if (isPair(item) && isScalar(item.key)) segments.push(String(item.key.value))
    // A list adds the index of the next item in the chain; the list itself (the last node) adds nothing.
    else if (isSeq(item) && index + 1 < chain.length) segments.push(item.items.indexOf(chain[index + 1] as never))
  })
  return segments
}

interface Tagged {
  tag: string
  /** Where the node's value starts: the tag is written just before it. */
  start: number
  path: PathSegment[]
}

/**
 * Tags outside the core schema, and core tags that do not fit their value (`!!float 1`, `!!int abc`,
 * which yaml only warns about). A tag's warning points at the tag itself (the better line:column); the
 * node it belongs to, for the key path, is the first tagged node starting after the tag.
 */
function tagIssues(doc: Document, tagged: Tagged[], at: At): ConfigIssue[] {
  const issues: ConfigIssue[] = []
  const reported = new Set<Tagged>()
  for (const warning of doc.warnings) {
    const [start, end] = warning.pos
    if (warning.code !== 'TAG_RESOLVE_FAILED') {
      issues.push({ path: '', message: `invalid YAML: ${warning.message.split('\n')[0]}`, ...at(start) })
      continue
    }
    const node = tagged.filter((t) => t.start >= end).sort((a, b) => a.start - b.start)[0]
    if (node) reported.add(node)
    const tag = node?.tag ?? /Unresolved tag: (\S+)/.exec(warning.message)?.[1] ?? '?'
    issues.push({ path: formatPath(node?.path ?? []), message: tagMessage(tag), ...at(start) })
  }
  for (const node of tagged) {
    if (!reported.has(node) && !CORE_TAGS.has(node.tag))
      issues.push({ path: formatPath(node.path), message: tagMessage(node.tag), ...at(node.start) })
  }
  return issues
}

function tagMessage(tag: string): string {
  if (CORE_TAGS.has(tag)) return `YAML tag ${shownTag(tag)} does not fit its value; remove the tag or write a value of that type`
  return `YAML tag ${shownTag(tag)} is not allowed: config files are read with YAML's core schema (${CORE_TAGS_SHOWN}); remove the tag`
}

/** Anchors, aliases, odd keys, foreign tags: everything refused before the document becomes data. */
function unsafeParts(doc: Document, at: At): ConfigIssue[] {
  const issues: ConfigIssue[] = []
  const tagged: Tagged[] = []
  const add = (ancestors: readonly unknown[], node: unknown, offset: number | undefined, message: string) =>
    issues.push({ path: formatPath(pathOf(ancestors, node)), message, ...(offset === undefined ? {} : at(offset)) })
  visit(doc, {
    Alias: (_, node, ancestors) =>
      add(ancestors, node, node.range?.[0], `YAML aliases are not allowed (*${node.source}); write the value out`),
    Node: (_, node, ancestors) => {
      if (node.anchor) add(ancestors, node, node.range?.[0], `YAML anchors are not allowed (&${node.anchor}); write the value out`)
      if (node.tag) tagged.push({ tag: node.tag, start: node.range?.[0] ?? 0, path: pathOf(ancestors, node) })
    },
    Pair: (_, pair, ancestors) => {
      const key = pair.key
      if (!isScalar(key) || typeof key.value === 'object')
        add(ancestors, pair, (key as Node | null)?.range?.[0], 'keys must be plain strings')
      else if (FORBIDDEN_KEYS.has(String(key.value))) add(ancestors, pair, key.range?.[0], `key "${String(key.value)}" is not allowed`)
    },
  })
  return [...tagIssues(doc, tagged, at), ...issues].sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0))
}

function fileProblem(file: string): ConfigIssue | undefined {
  let size: number
  try {
    const stats = statSync(file)
    if (!stats.isFile()) return { path: '', file, message: 'not a regular file' }
    size = stats.size
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return { path: '', file, message: 'file not found' }
    return { path: '', file, message: `cannot read the file (${code ?? (error as Error).message})` }
  }
  if (size > MAX_CONFIG_BYTES)
    return { path: '', file, message: `file is ${size} bytes; config files over ${MAX_CONFIG_BYTES} bytes (1 MiB) are refused` }
  return undefined
}

/** Walk the YAML nodes along a key path, remembering where the last key found is written. */
function locator(doc: Document, at: At): ConfigDocument['locate'] {
  return (segments) => {
    let node: unknown = doc.contents
    let found: Omit<Position, 'depth'> | undefined
    let depth = 0
    for (const segment of segments) {
      let offset: number | undefined
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment))
        offset = (pair?.key as Node | undefined)?.range?.[0]
        node = pair?.value
      } else if (isSeq(node) && typeof segment === 'number') {
        node = node.items[segment]
        offset = (node as Node | undefined)?.range?.[0]
      }
      if (offset === undefined) break
      found = at(offset)
      depth++
    }
    return found && { ...found, depth }
  }
}

/**
 * A key written with no value (`server:` with every child commented out) counts as unset, as if the
 * line were not there; only mapping entries are dropped, list items stay (and fail validation).
 */
export function dropNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(dropNulls)
  if (!isPlainObject(value)) return value
  return Object.fromEntries(Object.entries(value).flatMap(([k, v]) => (v === null ? [] : [[k, dropNulls(v)]])))
}

/** Read and parse one file; every problem comes back as an issue, nothing is thrown for bad content. */
export function readConfigDocument(file: string): { document?: ConfigDocument; issues: ConfigIssue[] } {
  const problem = fileProblem(file)
  if (problem) return { issues: [problem] }
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    return { issues: [{ path: '', file, message: `cannot read the file (${code ?? (error as Error).message})` }] }
  }
  if (extname(file).toLowerCase() === '.json') text = stripJsonComments(text)
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { ...PARSE_OPTIONS, lineCounter })
  const at: At = (offset) => {
    const { line, col } = lineCounter.linePos(offset)
    return { line, column: col }
  }
  const issues: ConfigIssue[] = doc.errors.map((e) => ({
    path: '',
    file,
    message: `invalid YAML: ${e.message.split('\n')[0]}`,
    ...at(e.pos[0]),
  }))
  if (issues.length === 0) issues.push(...unsafeParts(doc, at).map((i) => ({ ...i, file })))
  if (issues.length > 0) return { issues }
  const data = dropNulls(doc.toJS() ?? {})
  if (!isPlainObject(data)) {
    const got = Array.isArray(data) ? 'a list' : JSON.stringify(data)
    return { issues: [{ path: '', file, message: `expected a mapping of keys to values at the top level, got ${got}` }] }
  }
  return { document: { file, data, locate: locator(doc, at) }, issues: [] }
}
