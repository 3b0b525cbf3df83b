/**
 * Batch (docs/dashboard.md): the batch runner's folders from GET /batch — pending, locked (stale locks
 * marked), without inputs, and processed with their scores — as `orch batch status` shows them.
 */
import { api } from './api.ts'
import { figures, fill, h, keepingFocus, table } from './dom.ts'
import * as f from './format.ts'
import type { Page, PageContext } from './router.ts'
import type { BatchLock, BatchProcessed, BatchStatus } from './types.ts'

const POLL_MS = 10_000

export const batchPage: Page = { path: '/batch', nav: 'Batch', title: () => 'Batch', render }

function render(ctx: PageContext): void {
  const { main, signal } = ctx
  const updated = h('span', { 'data-figure': 'updated' }, 'loading…')
  const problem = h('div', { class: 'problem' })
  const body = h('div', {})
  fill(main, h('h1', { tabindex: '-1' }, 'Batch'), h('p', { class: 'meta' }, 'Updated ', updated), problem, body)
  const refresh = async () => {
    try {
      const s = await api<BatchStatus>('/batch')
      if (signal.aborted) return
      fill(problem)
      updated.textContent = f.time(Date.now())
      keepingFocus(main, () => fill(body, ...show(s)))
    } catch (error) {
      if (!signal.aborted) ctx.failed(error, problem)
    }
  }
  const timer = setInterval(() => void refresh(), POLL_MS)
  signal.addEventListener('abort', () => clearInterval(timer))
  void refresh()
}

/** An overall score as `orch batch status` writes it: one decimal; whatever an external engine gave otherwise. */
export function score(value: unknown): string {
  return typeof value === 'number' ? value.toFixed(1) : value === undefined || value === null ? '—' : String(value)
}

function show(s: BatchStatus): Node[] {
  const stale = s.locks.filter((l) => l.stale).length
  return [
    figures([
      ['Inputs folder', 'batch.inputs_root', h('code', {}, s.inputs_root)],
      ['Pending', 'batch.pending_count', f.count(s.pending.length)],
      ['Locked', 'batch.locked_count', stale > 0 ? `${f.count(s.locks.length)} (${f.count(stale)} stale)` : f.count(s.locks.length)],
      ['Processed', 'batch.processed_count', f.count(s.processed.length)],
    ]),
    h('h2', {}, 'Pending'),
    s.pending.length === 0
      ? h('p', {}, 'Nothing pending.')
      : h('ul', { 'data-list': 'pending' }, ...s.pending.map((name) => h('li', {}, name))),
    h('h2', {}, 'Locked'),
    s.locks.length === 0 ? h('p', {}, 'No batch is locked.') : lockTable(s),
    ...(s.empty.length === 0
      ? []
      : [h('h2', {}, 'Without input files'), h('ul', { 'data-list': 'empty' }, ...s.empty.map((name) => h('li', {}, name)))]),
    h('h2', {}, 'Processed'),
    s.processed.length === 0 ? h('p', {}, 'No batch processed yet.') : processedTable(s.processed),
  ]
}

function lockTable(s: BatchStatus): HTMLElement {
  return table(
    `A lock older than ${f.count(s.stale_lock_seconds)} s (batch.stale_lock_seconds) is stale: it blocks its batch until removed`,
    ['Batch', 'Lock', 'Locked at', 'Age', 'PID'],
    s.locks.map((l: BatchLock) => [
      l.name,
      l.stale
        ? h('span', { class: 'status status-bad', 'data-lock': 'stale' }, 'stale')
        : h('span', { class: 'status status-warn', 'data-lock': 'held' }, 'held'),
      f.time(Date.parse(l.locked_at)),
      f.waited(l.age_seconds * 1000),
      l.pid ?? '—',
    ]),
    { 'data-table': 'locks' },
  )
}

function processedTable(rows: BatchProcessed[]): HTMLElement {
  return table(
    'Processed batches, newest first',
    ['Batch', 'Processed at', 'Outcome', 'Score', 'Metrics scored', 'Not scored', 'Result'],
    rows.map((r) => {
      const unscored = Array.isArray(r.summary?.unscored) ? (r.summary.unscored as Array<{ metric_id?: unknown }>) : []
      return [
        r.name,
        f.time(Date.parse(r.processed_at)),
        r.exit_status === 0
          ? h('span', { class: 'status status-ok' }, r.summary ? 'scored' : 'imported')
          : h('span', { class: 'status status-bad' }, `exit ${r.exit_status}: ${r.error ?? ''}`),
        h('span', { 'data-figure': `batch.${r.name}.score` }, score(r.summary?.overall_score)),
        r.summary?.scored_metrics === undefined ? '—' : String(r.summary.scored_metrics),
        unscored.length === 0 ? '—' : unscored.map((u) => String(u.metric_id)).join(', '),
        r.result_path === null ? '—' : h('code', {}, r.result_path),
      ]
    }),
    { 'data-table': 'processed' },
  )
}
