/**
 * Where each value came from. Layers are applied in precedence order; a layer that replaces a value (a
 * scalar, or a whole list, since lists replace rather than merge) also wipes what lower layers said about
 * the values under it.
 */
import { formatPath, getPath, leafPaths, type PathSegment } from './paths.ts'

export type ConfigSource =
  | { kind: 'default' }
  | { kind: 'file'; file: string; line?: number }
  | { kind: 'env'; variable: string }
  | { kind: 'flag'; flag?: string }

export class SourceTracker {
  private readonly bySource = new Map<string, ConfigSource>()
  /** Leaves a layer set to `[]` or `{}`: what the schema later fills in under them is a default. */
  private readonly empty = new Set<string>()

  /** `replaced` are paths a layer wrote into `data`; each leaf under them gets that layer's source. */
  record(replaced: readonly PathSegment[][], data: unknown, source: (leaf: PathSegment[]) => ConfigSource): void {
    for (const path of replaced) {
      this.clear(path)
      for (const leaf of leafPaths(getPath(data, path), path)) {
        const key = formatPath(leaf)
        this.bySource.set(key, source(leaf))
        const value = getPath(data, leaf)
        if (value !== null && typeof value === 'object' && Object.keys(value).length === 0) this.empty.add(key)
      }
    }
  }

  private clear(path: readonly PathSegment[]): void {
    const prefix = formatPath(path)
    for (const key of [...this.bySource.keys()]) {
      if (key === prefix || key.startsWith(`${prefix}.`) || key.startsWith(`${prefix}[`)) {
        this.bySource.delete(key)
        this.empty.delete(key)
      }
    }
  }

  /** The source of the value at this path, or of the nearest enclosing value a layer set. */
  lookup(segments: readonly PathSegment[]): ConfigSource | undefined {
    for (let n = segments.length; n > 0; n--) {
      const key = formatPath(segments.slice(0, n))
      const found = this.bySource.get(key)
      if (found) return n < segments.length && this.empty.has(key) ? undefined : found
    }
    return undefined
  }

  /** Every leaf of the resolved config with its source; what no layer set came from the defaults. */
  forLeaves(config: unknown): Record<string, ConfigSource> {
    const out: Record<string, ConfigSource> = {}
    for (const leaf of leafPaths(config)) out[formatPath(leaf)] = this.lookup(leaf) ?? { kind: 'default' }
    return out
  }
}

/** `(default)`, `(file orch.yaml:3)`, `(env ORCH_SERVER_PORT)`, `(flag --port)`. */
export function describeSource(source: ConfigSource): string {
  switch (source.kind) {
    case 'default':
      return 'default'
    case 'file':
      return `file ${source.file}${source.line ? `:${source.line}` : ''}`
    case 'env':
      return `env ${source.variable}`
    case 'flag':
      return source.flag ? `flag --${source.flag}` : 'flag'
  }
}
