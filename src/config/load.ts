/**
 * The one config resolver. Precedence, lowest first: schema defaults < file (< orch.NAME.yaml overlay) <
 * ORCH_* environment < overrides (command flags). Everything is validated once, every problem reported at
 * once with its key path and, for files, line:column. Relative paths inside the config stay as written and
 * resolve against the working directory of the orch process.
 */
import { existsSync } from 'node:fs'
import { dirname, isAbsolute, join, relative, resolve } from 'node:path'
import { ConfigError, type ConfigIssue } from '../core/errors.ts'
import { DEFAULT_HOME } from '../core/home.ts'
import { DEFAULT_BACKEND } from './backends.ts'
import { coerceString, type EnvironmentReading, ORCH_OLLAMA_URL, readEnvironment } from './env.ts'
import { type ConfigDocument, readConfigDocument } from './file.ts'
import { kindAt, schemaAt } from './keys.ts'
import { FORBIDDEN_KEYS, formatPath, isPlainObject, mergeInto, type PathSegment, parsePath, setPath } from './paths.ts'
import { type ConfigSource, SourceTracker } from './provenance.ts'
import type { OrchConfig } from './schema.ts'
import { unavailableIssues } from './unavailable.ts'
import { type PathIssue, validateData } from './validate.ts'

export type { ConfigSource } from './provenance.ts'

export interface ConfigInputs {
  cwd?: string
  /** Defaults to process.env; this module is the only place orch reads the environment. */
  env?: Record<string, string | undefined>
  configFile?: string
  envName?: string
  home?: string
  /** Config keys set by flags, as key paths (`{ 'server.port': 8080 }`); strings are coerced to the key's type. */
  overrides?: Record<string, unknown>
}

export interface ResolvedConfig {
  config: OrchConfig
  /** State directory, absolute. */
  home: string
  /** Config files read, absolute, in merge order. */
  files: string[]
  /** Dotted leaf path → where its value came from. */
  sources: Record<string, ConfigSource>
  /** Things worth a log line that are not errors (unknown ORCH_* variables). */
  warnings: string[]
}

export const CONFIG_FILE_NAMES = ['orch.yaml', 'orch.yml', 'orch.json'] as const
const ENV_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]*$/

export interface ConfigLocation {
  cwd: string
  /** Base config file, absolute; undefined when there is none (pure defaults). */
  base?: string
  /** orch.NAME.yaml overlay, absolute. */
  overlay?: string
}

/** A path as messages show it: relative to the working directory when it lies inside it. */
export function displayPath(file: string, cwd: string): string {
  const rel = relative(cwd, file)
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : file
}

/**
 * The base config file: the named one (which must exist), else the first of orch.yaml, orch.yml,
 * orch.json in cwd; undefined when there is none.
 */
export function locateBaseFile(inputs: Pick<ConfigInputs, 'cwd' | 'env' | 'configFile'> = {}): string | undefined {
  const cwd = resolve(inputs.cwd ?? process.cwd())
  const fromEnv = inputs.configFile === undefined ? readEnvironment(inputs.env ?? process.env).configFile : undefined
  const named = inputs.configFile ?? fromEnv
  if (named === undefined) return CONFIG_FILE_NAMES.map((name) => join(cwd, name)).find((file) => existsSync(file))
  const base = resolve(cwd, named)
  if (!existsSync(base)) {
    const via = fromEnv === undefined ? '' : ' (from ORCH_CONFIG)'
    throw new ConfigError([{ path: '', file: named, message: `config file not found${via}` }], {
      hint: 'check the path, or run `orch config init` to create one',
    })
  }
  return base
}

/** Which files a resolution reads; throws ConfigError for a named file or environment that is missing. */
export function locateConfigFiles(inputs: ConfigInputs = {}): ConfigLocation {
  const cwd = resolve(inputs.cwd ?? process.cwd())
  const base = locateBaseFile(inputs)
  const envName = inputs.envName ?? readEnvironment(inputs.env ?? process.env).envName
  if (envName === undefined) return { cwd, base }
  if (!ENV_NAME.test(envName)) throw new ConfigError(`invalid environment name "${envName}": use letters, digits, "-" and "_"`)
  const dir = base ? dirname(base) : cwd
  const candidates = ['yaml', 'yml', 'json'].map((ext) => join(dir, `orch.${envName}.${ext}`))
  const overlay = candidates.find((file) => existsSync(file))
  if (!overlay) {
    throw new ConfigError(
      `environment "${envName}" has no config file: looked for orch.${envName}.yaml, .yml and .json in ${displayPath(dir, cwd) || '.'}`,
      {
        hint: `create orch.${envName}.yaml next to the base config, or drop --env / ORCH_ENV`,
      },
    )
  }
  return { cwd, base, overlay }
}

function readDocuments(files: string[], cwd: string): ConfigDocument[] {
  const documents: ConfigDocument[] = []
  const issues: ConfigIssue[] = []
  for (const file of files) {
    const read = readConfigDocument(file)
    issues.push(...read.issues.map((i) => ({ ...i, file: displayPath(file, cwd) })))
    if (read.document) documents.push(read.document)
  }
  if (issues.length > 0) throw new ConfigError(issues, { details: { file: issues[0]?.file } })
  return documents
}

/** Put a validation issue where the user wrote the value: file:line, or the variable or flag that set it. */
function placeIssue(issue: PathIssue, documents: ConfigDocument[], sources: SourceTracker | undefined, cwd: string): ConfigIssue {
  const path = formatPath(issue.segments)
  const source = sources?.lookup(issue.segments)
  if (source?.kind === 'env') return { path, message: `${issue.message} (from ${source.variable})` }
  if (source?.kind === 'flag')
    return { path, message: `${issue.message} (from ${source.flag ? `--${source.flag}` : 'a command-line flag'})` }
  let best: { file: string; line: number; column: number; depth: number } | undefined
  for (const document of [...documents].reverse()) {
    const at = document.locate(issue.segments)
    if (at && (!best || at.depth > best.depth)) best = { file: document.file, ...at }
  }
  if (!best) return { path, message: issue.message }
  return { path, message: issue.message, file: displayPath(best.file, cwd), line: best.line, column: best.column }
}

/** Issues in file order, then line and column; those without a place keep their order at the end. */
function sortIssues(issues: ConfigIssue[], files: string[]): ConfigIssue[] {
  const rank = (i: ConfigIssue) => (i.file === undefined ? files.length : files.indexOf(i.file))
  return [...issues].sort((a, b) => rank(a) - rank(b) || (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0))
}

/** Schema types whose value is written as a YAML mapping. */
const MAPPING_TYPES = new Set(['strict_object', 'object', 'loose_object', 'record'])

/**
 * Every place where the schema wants a mapping and the data has a list. valibot's object and record
 * schemas take any `typeof 'object'` input, arrays included: `server: []` parsed as an empty server section
 * (every default), and `server: [1, 2]` failed only on "unknown keys" 0 and 1, which the unknown-key walk
 * (plain objects only) never reported, so the configuration was refused with no problem named. Scalars need
 * no walk: valibot refuses them with the schema's own message.
 */
function listsForMappings(value: unknown, segments: PathSegment[] = []): PathIssue[] {
  const schema = schemaAt(segments) as { type: string; message?: unknown } | undefined
  if (!schema) return []
  if (schema.type === 'array')
    return Array.isArray(value) ? value.flatMap((item, index) => listsForMappings(item, [...segments, index])) : []
  if (!MAPPING_TYPES.has(schema.type)) return []
  if (Array.isArray(value)) {
    const expected = typeof schema.message === 'string' ? schema.message : 'expected a mapping of keys to values'
    return [{ segments, message: `${expected}, got a list` }]
  }
  if (!isPlainObject(value)) return []
  return Object.entries(value).flatMap(([key, item]) => listsForMappings(item, [...segments, key]))
}

const isWithin = (segments: readonly PathSegment[], prefix: readonly PathSegment[]) =>
  prefix.length <= segments.length && prefix.every((segment, i) => segments[i] === segment)

/**
 * The one verdict on merged data, for `orch config validate` and for every command that resolves the
 * configuration (serve among them): they used to decide apart, validate by "no issues" and the resolver
 * by "schema passed", so data the schema refused without an issue passed validate ("ok") while serve
 * failed with "0 problems". Here a config comes back only with no issue, and a refusal always names one.
 * A value a user set for a feature this version does not have is refused here too (unavailable.ts).
 */
function checkData(
  raw: Record<string, unknown>,
  documents: ConfigDocument[],
  sources: SourceTracker,
  cwd: string,
  files: string[],
  earlier: ConfigIssue[] = [],
): { config?: OrchConfig; issues: ConfigIssue[] } {
  const lists = listsForMappings(raw)
  const result = validateData(raw)
  // Below a list given for a mapping, valibot's findings are about list items as if they were keys: noise.
  const rest = result.issues.filter((issue) => !lists.some((list) => isWithin(issue.segments, list.segments)))
  // Values a user set for a feature this version does not have; a key already refused by the schema is said once.
  const isSet = (segments: PathSegment[]) => {
    const source = sources.lookup(segments)
    return source !== undefined && source.kind !== 'default'
  }
  const said = [...lists, ...rest]
  const unavailable = unavailableIssues(result.config ?? raw, isSet).filter(
    (issue) => !said.some((other) => isWithin(issue.segments, other.segments)),
  )
  const found = [...said, ...unavailable]
  if (result.config && found.length === 0 && earlier.length === 0) return { config: result.config, issues: [] }
  if (found.length === 0 && earlier.length === 0) {
    found.push({ segments: [], message: 'the configuration was refused without a reason named (a bug in orch; please report it)' })
  }
  const placed = found.map((issue) => placeIssue(issue, documents, sources, cwd))
  return {
    issues: sortIssues(
      [...earlier, ...placed],
      files.map((f) => displayPath(f, cwd)),
    ),
  }
}

function applyFiles(raw: Record<string, unknown>, documents: ConfigDocument[], sources: SourceTracker, cwd: string): void {
  for (const document of documents) {
    const replaced = mergeInto(raw, document.data)
    const file = displayPath(document.file, cwd)
    sources.record(replaced, raw, (leaf) => ({ kind: 'file', file, line: document.locate(leaf)?.line }))
  }
}

function applyEnvironment(raw: Record<string, unknown>, reading: EnvironmentReading, sources: SourceTracker): void {
  for (const setting of reading.settings) {
    setPath(raw, setting.segments, setting.value)
    sources.record([setting.segments], raw, () => ({ kind: 'env', variable: setting.variable }))
  }
  const backends = raw.backends
  if (reading.ollamaUrl !== undefined && (backends === undefined || (Array.isArray(backends) && backends.length === 0))) {
    raw.backends = [{ ...DEFAULT_BACKEND, url: reading.ollamaUrl }]
    sources.record([['backends']], raw, () => ({ kind: 'default' }))
    sources.record([['backends', 0, 'url']], raw, () => ({ kind: 'env', variable: ORCH_OLLAMA_URL }))
  }
}

/** Flags arrive as key paths; a path the schema does not have is a bug in the command, reported plainly. */
function applyOverrides(raw: Record<string, unknown>, overrides: Record<string, unknown>, sources: SourceTracker): ConfigIssue[] {
  const issues: ConfigIssue[] = []
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue
    const segments = parsePath(key)
    if (!segments || segments.some((seg) => typeof seg === 'string' && FORBIDDEN_KEYS.has(seg)) || !schemaAt(segments)) {
      issues.push({ path: key, message: 'not a configuration key (set by a command-line flag)' })
      continue
    }
    setPath(raw, segments, typeof value === 'string' ? coerceString(kindAt(segments), value) : value)
    sources.record([segments], raw, () => ({ kind: 'flag' }))
  }
  return issues
}

/** Resolve the configuration: defaults < file < overlay < ORCH_* env < overrides. Throws ConfigError. */
export function resolveConfig(inputs: ConfigInputs = {}): ResolvedConfig {
  const env = inputs.env ?? process.env
  const location = locateConfigFiles({ ...inputs, env })
  const { cwd } = location
  const files = [location.base, location.overlay].filter((f): f is string => f !== undefined)
  const documents = readDocuments(files, cwd)
  const raw: Record<string, unknown> = {}
  const sources = new SourceTracker()
  applyFiles(raw, documents, sources, cwd)
  const reading = readEnvironment(env)
  applyEnvironment(raw, reading, sources)
  const flagIssues = applyOverrides(raw, inputs.overrides ?? {}, sources)
  const result = checkData(raw, documents, sources, cwd, files, flagIssues)
  if (!result.config) {
    const displayed = files.map((f) => displayPath(f, cwd))
    throw new ConfigError(result.issues, { details: { file: displayed[0], files: displayed } })
  }
  return {
    config: result.config,
    home: resolve(cwd, inputs.home ?? reading.home ?? DEFAULT_HOME),
    files,
    sources: sources.forLeaves(result.config),
    warnings: reading.warnings,
  }
}

/**
 * Every problem in one file, on its own (no overlay, no environment): for `orch config validate`. Never
 * throws for problems in the file; they come back as issues.
 */
export function validateConfigFile(file: string, inputs: Pick<ConfigInputs, 'cwd'> = {}): ConfigIssue[] {
  const cwd = resolve(inputs.cwd ?? process.cwd())
  const absolute = resolve(cwd, file)
  const shown = displayPath(absolute, cwd)
  const read = readConfigDocument(absolute)
  if (!read.document) return read.issues.map((i) => ({ ...i, file: shown }))
  // The same merge and the same verdict as resolveConfig, with this one file as the only layer.
  const raw: Record<string, unknown> = {}
  const sources = new SourceTracker()
  applyFiles(raw, [read.document], sources, cwd)
  return checkData(raw, [read.document], sources, cwd, [absolute]).issues
}
