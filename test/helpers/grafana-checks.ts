/**
 * Checks of a Grafana dashboard in the classic JSON model (test/system/grafana-dashboard.test.ts): each
 * returns the problems it finds, so a test can show that it finds them in a broken copy too.
 */
import { parser } from '@prometheus-io/lezer-promql'

export type Dashboard = Record<string, any>

/** The data source uid every reference must carry: the import input, filled in by Grafana. */
export const DS_UID = `\${DS_PROMETHEUS}`

interface GridPos {
  x: number
  y: number
  w: number
  h: number
}

/** Every panel, rows' nested ones included. */
export function panelsOf(dashboard: Dashboard): Dashboard[] {
  const out: Dashboard[] = []
  for (const panel of (dashboard.panels ?? []) as Dashboard[]) {
    out.push(panel)
    for (const inner of (panel.panels ?? []) as Dashboard[]) out.push(inner)
  }
  return out
}

/** Every PromQL expression of the panels' targets, with the panel it belongs to. */
export function expressionsOf(dashboard: Dashboard): Array<{ panel: string; expr: string }> {
  return panelsOf(dashboard).flatMap((panel) =>
    ((panel.targets ?? []) as Dashboard[]).map((t) => ({ panel: String(panel.title), expr: String(t.expr ?? '') })),
  )
}

/** Grafana's own variables become what Prometheus would see once Grafana has put their values in. */
export function interpolate(expr: string): string {
  return expr
    .replace(/\$__rate_interval|\$__interval|\$__range/g, '1m')
    .replace(/\$\{?(\w+)\}?/g, (_, name: string) => (name === 'instance' || name === 'model' ? '.*' : `$${name}`))
}

/** The syntax errors lezer-promql finds in an expression, each with the text around it. */
export function promqlErrors(expr: string): string[] {
  const text = interpolate(expr)
  const errors: string[] = []
  parser.parse(text).iterate({
    enter: (node) => {
      if (node.type.isError) errors.push(`at ${node.from}: "${text.slice(Math.max(0, node.from - 10), node.to + 10)}"`)
    },
  })
  return text.trim() === '' ? ['empty expression'] : errors
}

/** The metric names the expressions select (the identifiers of vector selectors). */
export function metricNames(expr: string): string[] {
  const text = interpolate(expr)
  const names = new Set<string>()
  parser.parse(text).iterate({
    enter: (node) => {
      if (node.name === 'Identifier' && node.node.parent?.name === 'VectorSelector') names.add(text.slice(node.from, node.to))
    },
  })
  return [...names]
}

/** Names with at least one sample in a text exposition, and the TYPE of each family. */
export function exposition(text: string): { samples: Set<string>; types: Map<string, string> } {
  const samples = new Set<string>()
  const types = new Map<string, string>()
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line)
    if (type) types.set(type[1] as string, type[2] as string)
    else if (line && !line.startsWith('#')) samples.add(/^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)?.[0] ?? '')
  }
  return { samples, types }
}

/** Metric names the dashboard uses that have no sample in `text`; a histogram needs its _bucket, _sum and _count. */
export function missingMetrics(dashboard: Dashboard, text: string): string[] {
  const { samples, types } = exposition(text)
  const missing = new Set<string>()
  for (const { expr } of expressionsOf(dashboard)) {
    for (const name of metricNames(expr)) {
      const base = name.replace(/_(bucket|sum|count)$/, '')
      const wanted = types.get(base) === 'histogram' ? [`${base}_bucket`, `${base}_sum`, `${base}_count`] : [name]
      for (const series of wanted) if (!samples.has(series)) missing.add(series)
    }
  }
  return [...missing].sort()
}

/** Every data source reference that is not the import input `${DS_PROMETHEUS}` of type prometheus. */
export function foreignDatasources(dashboard: Dashboard): string[] {
  const problems: string[] = []
  const inputs = (dashboard.__inputs ?? []) as Dashboard[]
  if (!inputs.some((i) => i.name === 'DS_PROMETHEUS' && i.type === 'datasource' && i.pluginId === 'prometheus')) {
    problems.push('__inputs has no DS_PROMETHEUS datasource input')
  }
  const walk = (node: unknown, path: string) => {
    if (Array.isArray(node)) {
      node.forEach((item, i) => {
        walk(item, `${path}[${i}]`)
      })
      return
    }
    if (node === null || typeof node !== 'object') return
    for (const [key, value] of Object.entries(node)) {
      const at = path ? `${path}.${key}` : key
      if (key === 'datasource') {
        const ref = value as Dashboard | null
        if (ref?.type !== 'prometheus' || ref?.uid !== DS_UID) problems.push(`${at}: ${JSON.stringify(value)}`)
        continue
      }
      if (key === 'uid' && path !== '' && value !== DS_UID) problems.push(`${at}: ${JSON.stringify(value)}`)
      walk(value, at)
    }
  }
  walk(dashboard, '')
  // Every panel and target names its data source.
  for (const panel of panelsOf(dashboard)) {
    if (panel.type === 'row') continue
    if (!panel.datasource) problems.push(`panel "${panel.title}": no datasource`)
    for (const t of (panel.targets ?? []) as Dashboard[])
      if (!t.datasource) problems.push(`panel "${panel.title}" target ${t.refId}: no datasource`)
  }
  return problems
}

const overlap = (a: GridPos, b: GridPos) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h

/** Panels outside the 24 columns, without a size, or on top of one another. */
export function layoutProblems(dashboard: Dashboard): string[] {
  const problems: string[] = []
  const placed = panelsOf(dashboard).map((p) => ({ title: String(p.title), pos: p.gridPos as GridPos | undefined }))
  for (const { title, pos } of placed) {
    if (!pos) problems.push(`"${title}": no gridPos`)
    else if (pos.x < 0 || pos.y < 0 || pos.w < 1 || pos.h < 1 || pos.x + pos.w > 24) problems.push(`"${title}": ${JSON.stringify(pos)}`)
  }
  placed.forEach((a, i) => {
    for (const b of placed.slice(i + 1)) {
      if (a.pos && b.pos && overlap(a.pos, b.pos)) problems.push(`"${a.title}" and "${b.title}" overlap`)
    }
  })
  return problems
}
