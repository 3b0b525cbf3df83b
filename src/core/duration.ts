/**
 * The one grammar of durations, for config keys, flags (`--timeout`, `--duration`, `--target-wait`) and query
 * parameters: a plain number, counted in a unit the caller chooses, or parts with units from the largest to
 * the smallest: `500ms`, `90s`, `30m`, `1.5h`, `2d`, `1h30m`, `2h 30m`. Case does not matter. Each caller
 * keeps its own range (positive, at most …) and its own error message.
 */

// Plain decimal numbers only: Number() alone would take "", " ", "0x10" and "Infinity".
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i
const PART = /\s*(\d+\.?\d*|\.\d+)\s*(ms|d|h|m|s)/y
const UNIT_MS: Record<string, number> = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000, ms: 1 }
const UNIT_ORDER = ['d', 'h', 'm', 's', 'ms']

/** A plain number, or undefined when the text is not one. */
export function parseNumber(text: string): number | undefined {
  const trimmed = text.trim()
  return NUMBER.test(trimmed) ? Number(trimmed) : undefined
}

/** The parts with units, in milliseconds; undefined unless the whole text is such parts. */
function partsMs(text: string): number | undefined {
  let total = 0
  let lastUnit = -1
  PART.lastIndex = 0
  while (PART.lastIndex < text.length) {
    const match = PART.exec(text)
    const unit = UNIT_ORDER.indexOf(match?.[2] ?? '')
    // Out-of-order or repeated units ("30m2h", "1m1m") are more likely typos than intent.
    if (!match || unit <= lastUnit) return undefined
    total += Number(match[1]) * (UNIT_MS[match[2] as string] as number)
    lastUnit = unit
  }
  return lastUnit < 0 ? undefined : total
}

/**
 * A duration in milliseconds: a plain number counts in `plainUnitMs` (1000: seconds). Undefined when the text
 * is not a duration. The sign of a plain number is kept: the caller checks the range.
 */
export function parseDurationMs(text: string, plainUnitMs = 1000): number | undefined {
  const trimmed = text.trim().toLowerCase()
  const plain = parseNumber(trimmed)
  if (plain !== undefined) return plain * plainUnitMs
  return partsMs(trimmed)
}

/** A duration in seconds: a plain number counts in `plainUnitSeconds` (3600: hours). */
export function parseDurationSeconds(text: string, plainUnitSeconds = 1): number | undefined {
  const trimmed = text.trim().toLowerCase()
  const plain = parseNumber(trimmed)
  if (plain !== undefined) return plain * plainUnitSeconds
  // Summed in whole milliseconds, then divided once: 300ms is 0.3, not 0.30000000000000004.
  const ms = partsMs(trimmed)
  return ms === undefined ? undefined : ms / 1000
}
