/**
 * A workflow's steps drawn as an SVG: columns by dependency depth (a step sits one column right of its
 * deepest dependency), an arrow from each dependency to its step. A step's state is written in its box, with
 * a symbol, and repeated by the box's border and fill pattern, never by colour alone (layout: dag-layout.ts).
 */
import { BOX, type DagStep, layoutDag, type Placed } from './dag-layout.ts'
import { h } from './dom.ts'

/** Symbol, border dashes, border width and fill of each state: the word is always written beside them. */
interface Look {
  symbol: string
  dash?: string
  stroke: number
  fill: string
  color: string
}

const LOOK: Record<string, Look> = {
  pending: { symbol: '○', dash: '6 4', stroke: 1.5, fill: '#ffffff', color: '#5f6368' },
  queued: { symbol: '◔', dash: '2 3', stroke: 2, fill: '#ffffff', color: '#5f6368' },
  running: { symbol: '▶', stroke: 3, fill: 'url(#dag-hatch)', color: '#1f5fbf' },
  done: { symbol: '✓', stroke: 2, fill: '#e6f4ea', color: '#1e7d34' },
  failed: { symbol: '✕', stroke: 4, fill: '#fce8e6', color: '#b3261e' },
  cancelled: { symbol: '⊘', dash: '10 3 2 3', stroke: 2, fill: '#f1f3f4', color: '#5f6368' },
  skipped: { symbol: '↷', dash: '1 4', stroke: 1.5, fill: '#f8f9fa', color: '#5f6368' },
}
const DEFINITION: Look = { symbol: '', stroke: 1.5, fill: '#ffffff', color: '#3b3b3b' }

const NS = 'http://www.w3.org/2000/svg'

function svg(tag: string, attrs: Record<string, string | number>, ...children: Array<Element | string>): SVGElement {
  const node = document.createElementNS(NS, tag)
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value))
  for (const child of children) node.append(child)
  return node
}

/** The drawing, in a box that scrolls sideways on a narrow screen; its label says every step's state. */
export function drawDag(steps: readonly DagStep[], label: string): HTMLElement {
  const { placed, width, height } = layoutDag(steps)
  const at = new Map(placed.map((p) => [p.id, p]))
  const described = steps.map((s) => (s.state ? `${s.id}: ${s.state}` : s.id)).join(', ')
  const root = svg('svg', {
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: 'img',
    'aria-label': `${label}: ${described}`,
    'data-dag': '',
  })
  root.append(
    svg(
      'defs',
      {},
      svg(
        'marker',
        { id: 'dag-arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, orient: 'auto-start-reverse' },
        svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: '#3b3b3b' }),
      ),
      svg(
        'pattern',
        { id: 'dag-hatch', width: 8, height: 8, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' },
        svg('rect', { width: 8, height: 8, fill: '#eaf1fb' }),
        svg('line', { x1: 0, y1: 0, x2: 0, y2: 8, stroke: '#9bb8e6', 'stroke-width': 3 }),
      ),
    ),
  )
  for (const s of steps) {
    const to = at.get(s.id) as Placed
    for (const dep of s.depends_on) {
      const from = at.get(dep)
      if (!from) continue
      const x1 = from.x + BOX.width
      const y1 = from.y + BOX.height / 2
      const x2 = to.x
      const y2 = to.y + BOX.height / 2
      const mid = (x1 + x2) / 2
      root.append(
        svg('path', {
          d: `M ${x1} ${y1} C ${mid} ${y1}, ${mid} ${y2}, ${x2 - 1} ${y2}`,
          fill: 'none',
          stroke: '#3b3b3b',
          'stroke-width': 1.5,
          'marker-end': 'url(#dag-arrow)',
          'data-edge': `${dep}->${s.id}`,
        }),
      )
    }
  }
  for (const s of steps) {
    const p = at.get(s.id) as Placed
    const look: Look = s.state === undefined ? DEFINITION : (LOOK[s.state] ?? DEFINITION)
    const rect: Record<string, string | number> = {
      x: p.x,
      y: p.y,
      width: BOX.width,
      height: BOX.height,
      rx: 6,
      fill: look.fill,
      stroke: look.color,
      'stroke-width': look.stroke,
    }
    if (look.dash) rect['stroke-dasharray'] = look.dash
    const group = svg(
      'g',
      { 'data-step': s.id, 'data-state': s.state ?? '' },
      svg('rect', rect),
      svg('text', { x: p.x + 10, y: p.y + 22, 'font-weight': 600, 'font-size': 14, fill: '#1b1b1b' }, clip(s.id, 20)),
    )
    if (s.state !== undefined) {
      group.append(
        svg('text', { x: p.x + 10, y: p.y + 42, 'font-size': 13, fill: look.color, 'font-weight': 600 }, `${look.symbol} ${s.state}`),
      )
    }
    root.append(group)
  }
  // Focusable, so a keyboard can scroll a graph wider than the screen.
  return h('div', { class: 'scroll dag', tabindex: '0', role: 'region', 'aria-label': label }, root)
}

const clip = (text: string, n: number) => (text.length > n ? `${text.slice(0, n - 1)}…` : text)
