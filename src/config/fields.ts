/**
 * Building blocks for the config schema. Each builder carries, inside the valibot pipe, the one sentence
 * that says what it expects (used for every message about it, so a type error and a range error read the
 * same), a description, and metadata the key walker reads: the value kind (how env vars and flags coerce
 * into it) and a type label for the docs.
 */
import * as v from 'valibot'
import { parseDurationSeconds } from '../core/duration.ts'

/** How a string from an env var or a flag turns into this key's value. */
export type ValueKind = 'string' | 'int' | 'number' | 'boolean' | 'list' | 'duration' | 'enum' | 'map'

export type KeyMeta = {
  kind: ValueKind
  /** Human type label for docs, e.g. `integer 1-65535`. */
  type: string
  /** Default shown in docs when it is not a plain value (e.g. it depends on another key). */
  defaultText?: string
  /** Placeholder for a record's keys in docs paths, e.g. `provider` → `models.<provider>`. */
  keyName?: string
  /** Value shown in the example file when the key has no default. */
  example?: unknown
}

// Generic so each pipe infers its own input type from context.
const meta = <T>(m: KeyMeta): v.MetadataAction<T, KeyMeta> => v.metadata(m)

function intLabel(min: number, max: number | undefined): string {
  if (max !== undefined) return `an integer ${min}-${max}`
  if (min === 1) return 'a positive integer'
  if (min === 0) return 'a non-negative integer'
  return `an integer >= ${min}`
}

/** An integer in [min, max]; min 1 by default (counts, sizes and timeouts are positive). */
export function int(description: string, range: { min?: number; max?: number } = {}, extra: Partial<KeyMeta> = {}) {
  const min = range.min ?? 1
  const label = intLabel(min, range.max)
  const msg = `expected ${label}`
  return v.pipe(
    v.number(msg),
    v.integer(msg),
    v.minValue(min, msg),
    v.maxValue(range.max ?? Number.MAX_SAFE_INTEGER, msg),
    v.description(description),
    meta({ kind: 'int', type: label.replace(/^an? /, ''), ...extra }),
  )
}

export const port = (description: string, extra: Partial<KeyMeta> = {}) => int(description, { min: 1, max: 65535 }, extra)
export const nonNegativeInt = (description: string) => int(description, { min: 0 })

/** A finite number in [min, max]; `exclusiveMin` for values that must be above zero. */
export function num(description: string, range: { min: number; max?: number; exclusiveMin?: boolean }) {
  const label =
    range.max !== undefined
      ? `a number ${range.min}-${range.max}`
      : range.exclusiveMin
        ? `a number > ${range.min}`
        : `a number >= ${range.min}`
  const msg = `expected ${label}`
  return v.pipe(
    v.number(msg),
    v.finite(msg),
    v.check((n) => (range.exclusiveMin ? n > range.min : n >= range.min), msg),
    v.maxValue(range.max ?? Number.MAX_VALUE, msg),
    v.description(description),
    meta({ kind: 'number', type: label.replace(/^an? /, '') }),
  )
}

export function bool(description: string) {
  return v.pipe(v.boolean('expected true or false'), v.description(description), meta({ kind: 'boolean', type: 'boolean' }))
}

export function str(description: string, extra: Partial<KeyMeta> = {}) {
  const msg = 'expected a non-empty string'
  return v.pipe(v.string(msg), v.minLength(1, msg), v.description(description), meta({ kind: 'string', type: 'string', ...extra }))
}

/** A name that also ends up in file paths and metric labels, so it is kept to a safe alphabet. */
export function name(description: string) {
  const msg = 'expected a name of letters, digits, "-", "_" or "." (not starting with ".")'
  return v.pipe(
    v.string(msg),
    v.regex(/^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$/, msg),
    v.description(description),
    meta({ kind: 'string', type: 'name' }),
  )
}

export function httpUrl(description: string, extra: Partial<KeyMeta> = {}) {
  const msg = 'expected an http(s) URL'
  return v.pipe(
    v.string(msg),
    v.check((s) => URL.canParse(s) && /^https?:$/.test(new URL(s).protocol), msg),
    v.description(description),
    meta({ kind: 'string', type: 'http(s) URL', ...extra }),
  )
}

export function oneOf<const T extends readonly [string, ...string[]]>(options: T, description: string, extra: Partial<KeyMeta> = {}) {
  const msg = `expected one of ${options.map((o) => `"${o}"`).join(', ')}`
  return v.pipe(v.picklist(options, msg), v.description(description), meta({ kind: 'enum', type: options.join(' | '), ...extra }))
}

export function stringList(description: string, extra: Partial<KeyMeta> = {}) {
  const msg = 'expected a list of non-empty strings'
  return v.pipe(
    v.array(v.pipe(v.string(msg), v.minLength(1, msg)), msg),
    v.description(description),
    meta({ kind: 'list', type: 'list of strings', ...extra }),
  )
}

export function enumList<const T extends readonly [string, ...string[]]>(options: T, description: string) {
  const msg = `expected a list of ${options.map((o) => `"${o}"`).join(', ')}`
  return v.pipe(
    v.array(v.picklist(options, msg), msg),
    v.description(description),
    meta({ kind: 'list', type: `list of ${options.join(' | ')}` }),
  )
}

export function intList(description: string, extra: Partial<KeyMeta> = {}) {
  const msg = 'expected a list of non-negative integers'
  const item = v.pipe(v.number(msg), v.integer(msg), v.minValue(0, msg))
  return v.pipe(v.array(item, msg), v.description(description), meta({ kind: 'list', type: 'list of non-negative integers', ...extra }))
}

/** Environment for a child process. YAML reads `1` and `true` as numbers and booleans; the child gets strings. */
export function envMap(description: string) {
  const keyMsg = 'expected an environment variable name ([A-Za-z_][A-Za-z0-9_]*)'
  const valueMsg = 'expected a string, number or boolean'
  return v.pipe(
    v.record(
      v.pipe(v.string(keyMsg), v.regex(/^[A-Za-z_][A-Za-z0-9_]*$/, keyMsg)),
      v.pipe(v.union([v.string(), v.number(), v.boolean()], valueMsg), v.transform(String)),
      'expected a mapping of NAME: value',
    ),
    v.description(description),
    meta({ kind: 'map', type: 'mapping of string to string', example: { OMP_NUM_THREADS: '1' } }),
  )
}

export const INFINITY = 'infinity'

/** `"30m"` → 1800, `"1h30m"` → 5400 (the grammar of src/core/duration.ts, above 0); `"infinity"` stays; anything else → undefined. */
export function parseDuration(text: string): number | typeof INFINITY | undefined {
  if (text.trim().toLowerCase() === INFINITY) return INFINITY
  const seconds = parseDurationSeconds(text)
  return seconds !== undefined && Number.isFinite(seconds) && seconds > 0 ? seconds : undefined
}

/** Seconds as a number, or a string like `"90s"`, `"30m"`, `"1h"`, `"infinity"`; resolves to seconds or "infinity". */
export function duration(description: string) {
  const msg = 'expected a duration: seconds (a positive number), or "90s", "30m", "1h", "2d", "infinity"'
  return v.pipe(
    v.union(
      [
        v.pipe(v.number(msg), v.finite(msg), v.gtValue(0, msg)),
        v.pipe(
          v.string(msg),
          v.check((s) => parseDuration(s) !== undefined, msg),
        ),
      ],
      msg,
    ),
    v.transform((value): number | typeof INFINITY => (typeof value === 'number' ? value : (parseDuration(value) ?? INFINITY))),
    v.description(description),
    meta({ kind: 'duration', type: 'duration (seconds, "30m", "1h", "infinity")' }),
  )
}

/** A positive integer, or "infinity" for no limit. */
export function countOrInfinity(description: string) {
  const msg = 'expected a positive integer or "infinity"'
  return v.pipe(
    v.union([v.pipe(v.number(msg), v.integer(msg), v.minValue(1, msg)), v.literal(INFINITY, msg)], msg),
    v.description(description),
    meta({ kind: 'duration', type: 'positive integer or "infinity"' }),
  )
}

/** A section: a strict object (unknown keys are errors) whose keys all have defaults, so `{}` fills it. */
export function section<const E extends v.ObjectEntries>(description: string, entries: E) {
  return v.pipe(v.strictObject(entries, 'expected a mapping of keys to values'), v.description(description))
}
