/**
 * Walks the schema so that docs, the example file, flag coercion and did-you-mean all read the same
 * source. Docs paths use `[]` for list items and `<name>` for mapping keys: `pools[].pool_size`,
 * `models.<provider>.<model>.context`.
 */
import * as v from 'valibot'
import { ENV_VARS, type EnvVar, ORCH_OLLAMA_URL } from './env.ts'
import type { KeyMeta, ValueKind } from './fields.ts'
import { type PathSegment, parsePath } from './paths.ts'
import { OrchConfigSchema } from './schema.ts'

/** The parts of a valibot schema object the walker reads. */
interface SchemaNode {
  type: string
  wrapped?: SchemaNode
  entries?: Record<string, SchemaNode>
  item?: SchemaNode
  value?: SchemaNode
  pipe?: readonly unknown[]
}

export type KeyNodeKind = 'section' | 'collection' | 'leaf'

export interface KeyInfo {
  /** Docs path, e.g. `pools[].name`. */
  path: string
  node: KeyNodeKind
  /** How env vars and flags coerce into a leaf; undefined for sections and collections. */
  kind: ValueKind | undefined
  /** Type label for docs. */
  type: string
  description: string
  hasDefault: boolean
  default: unknown
  /** Default as docs show it. */
  defaultText: string
  /** Value for the example file when there is no default. */
  example: unknown
  /** Inside a list item or a mapping entry (its path has `[]` or `<...>`). */
  inItem: boolean
  /** Must be written (a list item's `name`, a backend's `url`). */
  required: boolean
}

const asNode = (schema: unknown) => schema as SchemaNode

function unwrap(schema: SchemaNode): { schema: SchemaNode; optional: boolean; hasDefault: boolean; default: unknown } {
  if (schema.type !== 'optional' || !schema.wrapped) return { schema, optional: false, hasDefault: false, default: undefined }
  const fallback = v.getDefault(schema as unknown as v.OptionalSchema<v.GenericSchema, unknown>)
  return { schema: schema.wrapped, optional: true, hasDefault: fallback !== undefined, default: fallback }
}

function metaOf(schema: SchemaNode): Partial<KeyMeta> {
  return schema.pipe ? (v.getMetadata(schema as unknown as v.SchemaWithPipe<[v.GenericSchema]>) as Partial<KeyMeta>) : {}
}

function descriptionOf(schema: SchemaNode): string {
  return (schema.pipe && v.getDescription(schema as unknown as v.SchemaWithPipe<[v.GenericSchema]>)) || ''
}

const isContainer = (schema: SchemaNode | undefined) => {
  const inner = schema && unwrap(schema).schema
  return inner?.type === 'strict_object' || inner?.type === 'record'
}

const formatDefault = (value: unknown): string => (value === undefined ? '' : JSON.stringify(value))

function walk(raw: SchemaNode, path: string, inItem: boolean, out: KeyInfo[]): void {
  const { schema, optional, hasDefault, default: fallback } = unwrap(raw)
  const meta = metaOf(schema)
  const description = descriptionOf(schema)
  const base = { path, description, hasDefault, default: fallback, inItem, required: false, example: meta.example }
  const defaultText = meta.defaultText ?? formatDefault(fallback)
  if (schema.type === 'strict_object' && schema.entries) {
    if (path && description) out.push({ ...base, node: 'section', kind: undefined, type: 'mapping', defaultText })
    for (const [key, entry] of Object.entries(schema.entries)) walk(entry, path ? `${path}.${key}` : key, inItem, out)
    return
  }
  if (schema.type === 'array' && isContainer(schema.item)) {
    out.push({ ...base, node: 'collection', kind: undefined, type: meta.type ?? 'list', defaultText })
    walk(schema.item as SchemaNode, `${path}[]`, true, out)
    return
  }
  if (schema.type === 'record' && isContainer(schema.value)) {
    out.push({ ...base, node: 'collection', kind: undefined, type: `mapping of ${meta.keyName ?? 'name'} to settings`, defaultText })
    walk(schema.value as SchemaNode, `${path}.<${meta.keyName ?? 'name'}>`, true, out)
    return
  }
  out.push({ ...base, node: 'leaf', kind: meta.kind, type: meta.type ?? schema.type, defaultText, required: !optional })
}

/** Every section, collection and leaf of the schema, in schema order. */
export function describeKeys(): KeyInfo[] {
  const out: KeyInfo[] = []
  walk(asNode(OrchConfigSchema), '', false, out)
  return out
}

/** The schema at a real path (`pools`, 0, `pool_size`), optional unwrapped; undefined past a leaf. */
export function schemaAt(segments: readonly PathSegment[]): SchemaNode | undefined {
  let node: SchemaNode | undefined = asNode(OrchConfigSchema)
  for (const segment of segments) {
    const schema: SchemaNode = unwrap(node).schema
    // hasOwn: a path segment like `constructor` must not find Object.prototype's members.
    if (schema.type === 'strict_object')
      node = typeof segment === 'string' && schema.entries && Object.hasOwn(schema.entries, segment) ? schema.entries[segment] : undefined
    else if (schema.type === 'array') node = typeof segment === 'number' ? schema.item : undefined
    else if (schema.type === 'record') node = typeof segment === 'string' ? schema.value : undefined
    else node = undefined
    if (!node) return undefined
  }
  return unwrap(node).schema
}

/** How a string set by an env var or a flag coerces into the key at this path. */
export function kindAt(segments: readonly PathSegment[]): ValueKind | undefined {
  const schema = schemaAt(segments)
  return schema ? metaOf(schema).kind : undefined
}

/** The keys a strict object at this path accepts (for did-you-mean); undefined when it is not one. */
export function keysAt(segments: readonly PathSegment[]): string[] | undefined {
  const schema = schemaAt(segments)
  return schema?.type === 'strict_object' && schema.entries ? Object.keys(schema.entries) : undefined
}

/** The docs path of a real path: `['pools', 2, 'name']` → `pools[].name`, `['runtime', 'ollama']` → `runtime.<provider>`. */
export function docPath(segments: readonly PathSegment[]): string {
  let out = ''
  let node: SchemaNode | undefined = asNode(OrchConfigSchema)
  for (const segment of segments) {
    const schema: SchemaNode | undefined = node && unwrap(node).schema
    if (schema?.type === 'array') {
      out += '[]'
      node = schema.item
    } else if (schema?.type === 'record') {
      out += `.<${metaOf(schema).keyName ?? 'name'}>`
      node = schema.value
    } else {
      out += out === '' ? String(segment) : `.${String(segment)}`
      node = schema?.entries?.[String(segment)]
    }
  }
  return out
}

/**
 * Env variables by the docs path of the key they set. ORCH_OLLAMA_URL is left out: it only moves the
 * default backend, and listing it beside `backends[].url` would suggest it overrides any backend's URL.
 */
export function envVarsByKey(): Map<string, EnvVar> {
  const pairs = ENV_VARS.flatMap((e) => (e.path && e.name !== ORCH_OLLAMA_URL ? [[docPath(parsePath(e.path) ?? []), e] as const] : []))
  return new Map(pairs)
}
