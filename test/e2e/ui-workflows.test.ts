/**
 * The dashboard's workflows, models and batch pages in a real browser (Debian's chromium through
 * playwright-core), against a real orch serve in front of two fake Ollama servers: "Run now" starts a run
 * whose graph shows every step until all are done, the per-model figures are those of /metrics after real
 * traffic to two models, and the batch page lists what GET /batch and `orch batch status --json` list. No
 * console errors. Screenshots at 1280×800 and 375×800 are saved under a temp dir and copied to /tmp/ui-shots/.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import * as f from '../../src/ui/format.ts'
import { type BatchFolders, makeBatchFolders, withoutAges } from '../helpers/batch-folders.ts'
import { figure, histogramQuantile, parseMetrics, sig6, sumOf, useBrowser } from '../helpers/browser.ts'
import { tempDir } from '../helpers/cli.ts'
import { startTestServe, type TestServe } from '../helpers/serve.ts'

const batchDir = tempDir('orch-ui-batch-')
afterAll(() => batchDir.cleanup())
const { openTab, screenshots } = useBrowser('orch-ui-shots-')

describe('the dashboard: workflows, models, batch', () => {
  let t: TestServe
  let tab: Awaited<ReturnType<typeof openTab>>
  let folders: BatchFolders

  beforeAll(async () => {
    t = await startTestServe({
      fakes: [
        { tokenDelayMs: 60, models: ['llama3.2', 'qwen2.5'] },
        { tokenDelayMs: 60, models: ['llama3.2'] },
      ],
      tweak: (c) => {
        c.batch.inputs_root = join(batchDir.path, 'Inputs')
        c.batch.outputs_root = join(batchDir.path, 'Outputs')
      },
    })
    folders = makeBatchFolders(batchDir.path, t.home)
    expect((await folders.cli('tick', '--json')).json().batch).toBe('Scored')
    tab = await openTab()
  }, 30_000)
  afterAll(async () => {
    await tab?.context.close()
    await t?.stop()
  })

  test('workflows: "Run now" asks first, then the new run’s graph shows every step, live, until all are done', async () => {
    const created = await t.fetch('/workflows', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'three-steps',
        steps: [
          { id: 'outline', type: 'chat', model: 'llama3.2', prompt: 'List three colors.' },
          { id: 'draft', type: 'generate', model: 'llama3.2', prompt: 'Write about {{steps.outline.output}}', depends_on: ['outline'] },
          { id: 'review', type: 'chat', model: 'qwen2.5', prompt: 'Review: {{steps.draft.output}}', depends_on: ['draft'] },
        ],
      }),
    })
    expect(created.status).toBe(201)
    const { id } = (await created.json()) as { id: string }
    const { page } = tab
    await page.goto(`${t.url}/ui#/overview`)
    await page.getByRole('link', { name: 'Workflows' }).click()
    const row = page.locator('[data-table="workflows"] tbody tr', { hasText: 'three-steps' })
    await row.waitFor()
    const cells = await row.locator('td').allInnerTexts()
    expect(cells.slice(1)).toEqual(['3', 'none (runs on demand)', 'yes (no schedule)', '—', 'never run'])
    await screenshots(page, 'workflows-list')

    await row.getByRole('link', { name: 'three-steps' }).click()
    await page.waitForURL(new RegExp(`#/workflows/${id}$`))
    await page.locator('[data-dag] [data-step]').first().waitFor()
    expect(await page.locator('[data-dag] [data-step]').count()).toBe(3)
    expect(await page.locator('[data-dag] [data-edge]').evaluateAll((es) => es.map((e) => e.getAttribute('data-edge')))).toEqual([
      'outline->draft',
      'draft->review',
    ])
    await screenshots(page, 'workflows-detail')

    // "Not now" (it has the focus) and Escape start nothing.
    await page.getByRole('button', { name: 'Run now…' }).click()
    await page.getByRole('dialog').waitFor()
    expect(await page.evaluate('document.activeElement.textContent')).toBe('Not now')
    await screenshots(page, 'workflows-run-now-dialog')
    await page.keyboard.press('Escape')
    await page.getByRole('dialog').waitFor({ state: 'hidden' })
    const runsOf = async () => ((await (await t.fetch(`/workflows/${id}/runs`)).json()) as { runs: Array<{ id: string }> }).runs
    expect(await runsOf()).toEqual([])

    await page.getByRole('button', { name: 'Run now…' }).click()
    await page.getByRole('button', { name: 'Start the run' }).click()
    await page.waitForURL(/#\/runs\/run_/)
    const runId = decodeURIComponent(page.url().split('#/runs/')[1] as string)
    expect((await runsOf()).map((r) => r.id)).toEqual([runId])
    // Every step is drawn from the start, in its own column (each depends on the one before).
    await page.locator('[data-dag] [data-step]').first().waitFor()
    const steps = page.locator('[data-dag] [data-step]')
    expect(await steps.evaluateAll((es) => es.map((e) => e.getAttribute('data-step')))).toEqual(['outline', 'draft', 'review'])
    // Live: the page opens on the run in flight, and its states move on through the workflow events (well
    // before the page's fallback poll, 5 s), ending with every step done.
    expect(await figure(page, 'run.state')).not.toBe('done')
    await page.locator('[data-figure="run.state"]', { hasText: /^done$/ }).waitFor({ timeout: 4000 })
    await page.locator('[data-dag] [data-state="done"]').nth(2).waitFor({ timeout: 5000 })
    const run = (await (await t.fetch(`/runs/${runId}`)).json()) as {
      state: string
      steps: Array<{ id: string; state: string; task_id: string; output: string }>
    }
    expect(run.state).toBe('done')
    expect(await steps.evaluateAll((es) => es.map((e) => e.getAttribute('data-state')))).toEqual(['done', 'done', 'done'])
    // The state is written in each box, not only drawn.
    expect(await page.locator('[data-dag] [data-step="draft"]').textContent()).toBe('draft✓ done')
    for (const step of run.steps) {
      expect(step.state).toBe('done')
      expect(await figure(page, `step.${step.id}.state`)).toBe('done')
      expect(await page.locator(`[data-table="steps"] a[href="#/tasks/${step.task_id}"]`).innerText()).toBe(step.task_id)
      expect(await figure(page, `step.${step.id}.output`)).toBe(step.output)
    }
    await screenshots(page, 'run-done')

    // The step's task link opens the task.
    const first = run.steps[0] as { task_id: string }
    await page.locator(`a[href="#/tasks/${first.task_id}"]`).click()
    await page.locator('[data-figure="task.state"]', { hasText: 'done' }).waitFor()
    expect(tab.errors).toEqual([])
  }, 60_000)

  test('models: each model’s figures, and each model on each backend, equal /metrics after traffic to two models', async () => {
    const chat = (model: string, content: string) =>
      t.fetch('/api/chat', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model, stream: false, messages: [{ role: 'user', content }] }),
      })
    for (let i = 0; i < 4; i++) {
      const answers = await Promise.all([chat('llama3.2', `one ${i}`), chat('llama3.2', `two ${i}`), chat('qwen2.5', `three ${i}`)])
      for (const a of answers) expect(a.status).toBe(200)
    }
    const { page } = tab
    await page.goto(`${t.url}/ui#/models`)
    await page.locator('[data-table="models"]').waitFor()
    await page.reload()
    await page.locator('[data-table="models"]').waitFor()
    const samples = parseMetrics(await (await t.fetch('/metrics')).text())
    const latency = 'orch_backend_request_duration_seconds'
    const models = [...new Set(samples.filter((s) => s.name === `${latency}_count`).map((s) => s.labels.model as string))].sort()
    expect(models.length).toBeGreaterThanOrEqual(2)
    const rows = page.locator('[data-table="models"] tbody tr')
    expect(await rows.locator('td:first-child').allInnerTexts()).toEqual(models)
    const check = async (key: string, where: (l: Record<string, string>) => boolean) => {
      const calls = sumOf(samples, `${latency}_count`, where)
      expect(calls).toBeGreaterThan(0)
      expect(await figure(page, `${key}.calls`)).toBe(f.count(calls))
      const errors = sumOf(samples, 'orch_backend_calls_total', (l) => where(l) && l.outcome === 'error')
      expect(await figure(page, `${key}.errors`)).toBe(f.count(errors))
      expect(await figure(page, `${key}.latency.p50`)).toBe(f.seconds(sig6(histogramQuantile(samples, latency, 0.5, where))))
      expect(await figure(page, `${key}.latency.p99`)).toBe(f.seconds(sig6(histogramQuantile(samples, latency, 0.99, where))))
      const ttft = histogramQuantile(samples, 'orch_time_to_first_token_seconds', 0.5, where)
      expect(await figure(page, `${key}.ttft.p50`)).toBe(f.seconds(sig6(ttft)))
      const n = sumOf(samples, 'orch_tokens_per_second_count', where)
      const mean = n > 0 ? f.perSecond(sig6(sumOf(samples, 'orch_tokens_per_second_sum', where) / n)) : f.NONE
      expect(await figure(page, `${key}.tokens.mean`)).toBe(mean)
    }
    for (const model of models) await check(`model.${model}`, (l) => l.model === model)
    const pairs = [
      ...new Set(samples.filter((s) => s.name === `${latency}_count`).map((s) => `${s.labels.model}@${s.labels.backend}`)),
    ].sort()
    expect(pairs.some((p) => p.endsWith('@fake1'))).toBe(true)
    expect(await page.locator('[data-table="model-backends"] tbody tr').count()).toBe(pairs.length)
    for (const pair of pairs) {
      const [model, backend] = pair.split('@')
      await check(`model.${pair}`, (l) => l.model === model && l.backend === backend)
    }
    // Two readings a poll apart make the chart's first point.
    await page.locator('.chart-summary', { hasText: 'Latest interval' }).waitFor({ timeout: 12_000 })
    expect(await page.locator('.chart canvas').count()).toBe(1)
    await screenshots(page, 'models')
    expect(tab.errors).toEqual([])
  }, 40_000)

  test('batch: pending, locked (the stale lock marked) and processed with its score, as GET /batch and orch batch status --json', async () => {
    const { page } = tab
    await page.goto(`${t.url}/ui#/batch`)
    await page.locator('[data-table="processed"]').waitFor()
    const api = (await (await t.fetch('/batch')).json()) as any
    const cli = (await folders.cli('status', '--json')).json()
    expect(withoutAges(api)).toEqual(withoutAges(cli))
    expect(await page.locator('[data-list="pending"] li').allInnerTexts()).toEqual(api.pending)
    expect(api.pending).toEqual(['Waiting'])
    const locks = page.locator('[data-table="locks"] tbody tr')
    expect(await locks.locator('td:first-child').allInnerTexts()).toEqual(api.locks.map((l: any) => l.name))
    expect(await locks.locator('[data-lock]').evaluateAll((es) => es.map((e) => e.getAttribute('data-lock')))).toEqual(
      api.locks.map((l: any) => (l.stale ? 'stale' : 'held')),
    )
    expect(await locks.filter({ hasText: 'Stuck' }).innerText()).toContain('stale')
    expect(await locks.filter({ hasText: 'Busy' }).innerText()).toContain('held')
    const processed = page.locator('[data-table="processed"] tbody tr')
    expect(await processed.locator('td:first-child').allInnerTexts()).toEqual(api.processed.map((p: any) => p.name))
    const [scored] = api.processed
    expect(typeof scored.summary.overall_score).toBe('number')
    expect(await figure(page, 'batch.Scored.score')).toBe(scored.summary.overall_score.toFixed(1))
    expect(await figure(page, 'batch.inputs_root')).toBe(api.inputs_root)
    await screenshots(page, 'batch')
    expect(tab.errors).toEqual([])
  }, 30_000)
})
