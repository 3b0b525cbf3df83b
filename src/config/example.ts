/**
 * The commented example config (`orch config init`, config/orch.example.yaml): every key with its default
 * and a comment, generated from the schema so it cannot drift. Keys without a default, and the items of
 * lists and mappings (pools, backends, models), are shown commented out with example values, and so are
 * keys whose every value is refused in this version; the active part resolves to exactly the default
 * configuration, and sets nothing `orch config validate` refuses.
 */
import YAML from 'yaml'
import { describeKeys, docPath, envVarsByKey, type KeyInfo } from './keys.ts'
import { type PathSegment, parsePath } from './paths.ts'
import { isUnavailable } from './unavailable.ts'

/** Items for the commented examples of list and mapping sections; together they use every item key. */
export const EXAMPLE_ITEMS: Record<string, unknown> = {
  models: { ollama: { 'llama3.2': { context: 16384, temperature: 0.4, parallel: false } } },
  pools: [
    {
      name: 'gpu',
      profile: 'ollama',
      pool_size: 2,
      min_workers: 0,
      max_workers: 4,
      target_per_worker: 2,
      scale_down_idle: '10m',
      env: { OLLAMA_KEEP_ALIVE: '24h' },
      startup_batch_size: 8,
      startup_batch_delay_ms: 750,
      worker_ttl: '1h',
      worker_max_requests: 10000,
      heartbeat: {
        enabled: true,
        ping_interval_ms: 10000,
        timeout_ms: 30000,
        max_missed_heartbeats: 2,
        initial_delay_ms: 0,
        dependent: true,
      },
      models: ['llama3.2'],
      gpus: [0, 1],
      depends_on: [],
      health_path: '/api/tags',
      api: 'ollama',
      port: 11500,
    },
    {
      name: 'llamacpp',
      profile: 'command',
      command: ['llama-server', '--port', '{port}', '-m', '{model}'],
      models: ['/models/qwen2.5-7b.gguf'],
      health_path: '/health',
      api: 'openai',
      depends_on: ['gpu'],
    },
    {
      name: 'engine',
      profile: 'llamacpp',
      model: 'models/llama-3.2-1b-instruct-q4_k_m.gguf',
      models: ['llama3.2-1b'],
      pool_size: 1,
      llamacpp: { gpu_layers: 'auto', threads: 0, context_size: 8192, parallel: 4, node_llama_cpp_path: '/opt/orch' },
    },
  ],
  backends: [
    { name: 'ollama', type: 'ollama', url: 'http://127.0.0.1:11434', models: ['llama3.2'], concurrency: 4 },
    { name: 'vllm', type: 'openai', url: 'http://127.0.0.1:8000/v1', models: ['qwen2.5-7b'], concurrency: 16, api_key_env: 'VLLM_API_KEY' },
  ],
}

const HEADER = `# orch configuration: every key with its default value.
# Generated from src/config/schema.ts (bun scripts/gen-config-docs.ts); docs/configuration.md explains each key.
# Precedence, lowest first: defaults < this file < orch.NAME.yaml (--env NAME) < ORCH_* variables < flags.
# Relative paths resolve against the working directory orch runs in. \`orch config validate\` checks a file.
`

const inline = (value: unknown): string =>
  value === undefined ? '' : YAML.stringify(value, { collectionStyle: 'flow', flowCollectionPadding: false }).trimEnd()

interface Context {
  keys: Map<string, KeyInfo>
  children: Map<string, KeyInfo[]>
  env: Map<string, string>
}

function buildContext(): Context {
  const keys = describeKeys()
  const children = new Map<string, KeyInfo[]>()
  for (const key of keys) {
    const parent = key.path.replace(/(\.[^.[\]]+|\[\])$/, '').replace(/\[\]$/, '')
    const list = children.get(parent === key.path ? '' : parent) ?? []
    list.push(key)
    children.set(parent === key.path ? '' : parent, list)
  }
  const env = new Map([...envVarsByKey()].map(([path, variable]) => [path, variable.name]))
  return { keys: new Map(keys.map((k) => [k.path, k])), children, env }
}

const lastName = (path: string) => path.slice(path.lastIndexOf('.') + 1)

function comment(key: KeyInfo, ctx: Context, withDefault = false): string {
  const facts = [key.node === 'leaf' ? key.type : undefined, withDefault && key.defaultText ? `default ${key.defaultText}` : undefined]
  const variable = ctx.env.get(key.path)
  if (variable) facts.push(`env ${variable}`)
  const extra = facts.filter(Boolean).join('; ')
  return extra ? `${key.description} (${extra})` : key.description
}

/**
 * Plain data as YAML lines, each key with its description as a trailing comment; commented out unless
 * `active`. `lead` is the indentation before the `#`.
 */
function dataLines(value: unknown, segments: PathSegment[], at: { lead: string; depth: number; active: boolean }, ctx: Context): string[] {
  const lines: string[] = []
  const prefix = `${at.lead}${at.active ? '' : '# '}${'  '.repeat(at.depth)}`
  const entries: [PathSegment, unknown][] = Array.isArray(value)
    ? value.map((v, i) => [i, v])
    : Object.entries(value as Record<string, unknown>)
  for (const [segment, item] of entries) {
    const path = [...segments, segment]
    const key = ctx.keys.get(docPath(path))
    const nested = item !== null && typeof item === 'object' && !(Array.isArray(item) && item.every((x) => typeof x !== 'object'))
    const tail = key?.description ? `  # ${comment(key, ctx, true)}` : ''
    const deeper = { ...at, depth: at.depth + 1 }
    if (typeof segment === 'number') {
      const inner = dataLines(item, path, deeper, ctx)
      lines.push(...inner.map((line, i) => (i === 0 ? `${prefix}- ${line.slice(prefix.length + 2)}` : line)))
    } else if (nested && Object.keys(item as object).length > 0) {
      lines.push(`${prefix}${inline(segment)}:${tail}`, ...dataLines(item, path, deeper, ctx))
    } else {
      lines.push(`${prefix}${segment}: ${inline(item)}${tail}`)
    }
  }
  return lines
}

/** A default the file writes would be a value set by the user: one refused (unavailable.ts) is shown commented out. */
const writesDefault = (key: KeyInfo) => key.hasDefault && !isUnavailable(key.path, key.default)

const hasActive = (key: KeyInfo, ctx: Context): boolean =>
  key.node === 'leaf' ? writesDefault(key) : key.node === 'collection' || (ctx.children.get(key.path) ?? []).some((c) => hasActive(c, ctx))

function renderKey(key: KeyInfo, indent: string, ctx: Context): string[] {
  const name = lastName(key.path)
  const lines = [`${indent}# ${comment(key, ctx)}`]
  if (key.node === 'section') {
    if (!hasActive(key, ctx)) {
      const sample = Object.fromEntries((ctx.children.get(key.path) ?? []).map((c) => [lastName(c.path), c.example]))
      return [
        ...lines,
        `${indent}# ${name}:`,
        ...dataLines(sample, parsePath(key.path) ?? [], { lead: indent, depth: 1, active: false }, ctx),
      ]
    }
    return [...lines, `${indent}${name}:`, ...(ctx.children.get(key.path) ?? []).flatMap((c) => renderKey(c, `${indent}  `, ctx))]
  }
  if (key.node === 'collection') {
    const sample = EXAMPLE_ITEMS[key.path]
    if (sample !== undefined)
      lines.push(
        `${indent}# Example:`,
        `${indent}# ${name}:`,
        ...dataLines(sample, [key.path], { lead: indent, depth: 1, active: false }, ctx),
      )
    const fallback = key.default
    if (fallback && typeof fallback === 'object' && Object.keys(fallback).length > 0) {
      return [...lines, `${indent}${name}:`, ...dataLines(fallback, [key.path], { lead: indent, depth: 1, active: true }, ctx)]
    }
    return [...lines, `${indent}${name}: ${inline(fallback)}`]
  }
  if (key.hasDefault && !writesDefault(key)) return [...lines, `${indent}# ${name}: ${inline(key.default)}`]
  if (!key.hasDefault) return [...lines, `${indent}# ${name}: ${inline(key.example ?? '')}`]
  return [...lines, `${indent}${name}: ${inline(key.default)}`]
}

/** The example file's text. */
export function renderExampleConfig(): string {
  const ctx = buildContext()
  const blocks = (ctx.children.get('') ?? []).map((key) => renderKey(key, '', ctx).join('\n'))
  return `${HEADER}\n${blocks.join('\n\n')}\n`
}
