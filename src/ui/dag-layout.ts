/**
 * Where each step of a workflow's graph goes: columns by dependency depth (a step sits one column right of
 * its deepest dependency), rows in definition order within a column. No DOM here, so it is tested alone.
 */

export interface DagStep {
  id: string
  depends_on: string[]
  /** Absent when drawing a definition rather than a run. */
  state?: string
}

export interface Placed {
  id: string
  layer: number
  row: number
  x: number
  y: number
}

export const BOX = { width: 168, height: 54, gapX: 56, gapY: 18, pad: 12 } as const

/**
 * Each step's column (its longest chain of dependencies) and row (definition order within the column). A
 * dependency on an unknown step is ignored; a cycle, which the server refuses, cannot loop here.
 */
export function layoutDag(steps: readonly DagStep[]): { placed: Placed[]; width: number; height: number } {
  const byId = new Map(steps.map((s) => [s.id, s]))
  const layers = new Map<string, number>()
  const layerOf = (id: string, seen: Set<string>): number => {
    const known = layers.get(id)
    if (known !== undefined) return known
    if (seen.has(id)) return 0
    seen.add(id)
    const deps = (byId.get(id)?.depends_on ?? []).filter((d) => byId.has(d))
    const layer = deps.length === 0 ? 0 : 1 + Math.max(...deps.map((d) => layerOf(d, seen)))
    layers.set(id, layer)
    return layer
  }
  const rows = new Map<number, number>()
  const placed = steps.map((s) => {
    const layer = layerOf(s.id, new Set())
    const row = rows.get(layer) ?? 0
    rows.set(layer, row + 1)
    return {
      id: s.id,
      layer,
      row,
      x: BOX.pad + layer * (BOX.width + BOX.gapX),
      y: BOX.pad + row * (BOX.height + BOX.gapY),
    }
  })
  const columns = Math.max(1, ...placed.map((p) => p.layer + 1))
  const tallest = Math.max(1, ...rows.values())
  return {
    placed,
    width: 2 * BOX.pad + columns * BOX.width + (columns - 1) * BOX.gapX,
    height: 2 * BOX.pad + tallest * BOX.height + (tallest - 1) * BOX.gapY,
  }
}
