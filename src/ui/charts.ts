/** Line charts over time (uPlot, bundled): sized to their container, redrawn in place as points arrive. */
import uPlot from 'uplot'
import { h } from './dom.ts'

export interface SeriesSpec {
  label: string
  color: string
  /** Dashes tell the series apart without colour. */
  dash?: number[]
}

export interface Chart {
  element: HTMLElement
  update(times: number[], series: Array<Array<number | null>>): void
  destroy(): void
}

export function lineChart(title: string, unit: string, windowS: number, specs: SeriesSpec[], describe: () => string): Chart {
  const plotArea = h('div', { class: 'plot' })
  const summary = h('p', { class: 'chart-summary' })
  const element = h('figure', { class: 'chart', role: 'group', 'aria-label': title }, h('figcaption', {}, title), plotArea, summary)
  let plot: uPlot | undefined
  let data: uPlot.AlignedData = [[], ...specs.map(() => [])]
  const xRange = (): uPlot.Range.MinMax => {
    const last = (data[0].at(-1) as number | undefined) ?? Date.now() / 1000
    return [last - windowS, last]
  }
  const yTop = () => {
    let top = 0
    for (const series of data.slice(1)) for (const v of series) if (typeof v === 'number' && v > top) top = v
    return top > 0 ? top * 1.15 : 1
  }
  const width = () => Math.max(240, plotArea.clientWidth || 600)
  const make = () => {
    plot = new uPlot(
      {
        width: width(),
        height: 200,
        series: [
          { label: 'time', value: (_u, v) => (v === null ? '' : new Date(v * 1000).toLocaleTimeString()) },
          ...specs.map((s) => ({ label: s.label, stroke: s.color, width: 2, ...(s.dash ? { dash: s.dash } : {}), spanGaps: true })),
        ],
        axes: [{}, { label: unit, size: 60 }],
        // The whole window, ending at the newest point: a chart with few points still reads as "recent".
        scales: {
          x: { time: true, range: () => xRange() },
          y: { range: () => [0, yTop()] },
        },
        legend: { show: true },
        cursor: { drag: { x: false, y: false } },
      },
      data,
      plotArea,
    )
  }
  const resize = new ResizeObserver(() => plot?.setSize({ width: width(), height: 200 }))
  resize.observe(plotArea)
  return {
    element,
    update(times, series) {
      data = [times, ...series]
      if (!plot && plotArea.isConnected) make()
      else plot?.setData(data)
      summary.textContent = describe()
    },
    destroy() {
      resize.disconnect()
      plot?.destroy()
    },
  }
}
