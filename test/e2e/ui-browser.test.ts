/**
 * The web dashboard at /ui in a real browser (Debian's chromium through playwright-core), against a real
 * orch serve in front of a fake Ollama: every page opens without a console error, the figures shown are
 * those of /stats and /metrics, the task list and detail match the task API, and a queued task is
 * cancelled from the page — with server.token set, only once the page has the right token. Screenshots of
 * every page at 1280×800 and 375×800 are saved under a temp dir and copied to /tmp/ui-shots/.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { BrowserContext } from 'playwright-core'
import * as f from '../../src/ui/format.ts'
import { figure, histogramQuantile, parseMetrics, sig6, sumOf, useBrowser } from '../helpers/browser.ts'
import { driveTraffic } from '../helpers/metrics-traffic.ts'
import { startTestServe, type TestServe } from '../helpers/serve.ts'

const TOKEN = 'ui-browser-test-token-0123456789'
const { openTab, screenshots } = useBrowser('orch-ui-shots-')

describe('the dashboard, open server', () => {
  let t: TestServe
  let tab: Awaited<ReturnType<typeof openTab>>

  beforeAll(async () => {
    t = await startTestServe({ fakes: [{ tokenDelayMs: 2 }] })
    await driveTraffic(t)
    tab = await openTab()
  })
  afterAll(async () => {
    await tab?.context.close()
    await t?.stop()
  })

  test('the page and its assets are served by orch serve itself, bundled: no request leaves the server', async () => {
    const outside: string[] = []
    tab.page.on('request', (request) => {
      if (!request.url().startsWith(t.url)) outside.push(request.url())
    })
    const response = await tab.page.goto(`${t.url}/ui#/overview`)
    expect(response?.status()).toBe(200)
    expect(response?.headers()['content-type']).toContain('text/html')
    await tab.page.locator('[data-figure="requests.total"]').waitFor()
    expect(outside).toEqual([])
  })

  test('overview: the figures equal /stats and /metrics', async () => {
    const { page } = tab
    await page.locator('[data-figure="requests.total"]').waitFor()
    // The figures are the page's latest summary; read the server's own after it, with no traffic between.
    await page.reload()
    await page.locator('[data-figure="requests.total"]').waitFor()
    const stats = (await (await t.fetch('/stats')).json()) as any
    const samples = parseMetrics(await (await t.fetch('/metrics')).text())
    expect(stats.requests).toBeGreaterThan(0)
    expect(await figure(page, 'requests.total')).toBe(f.count(stats.requests))
    expect(await figure(page, 'requests.errors')).toBe(f.count(stats.errors))
    expect(await figure(page, 'queue.depth')).toBe(f.count(stats.queued))
    expect(await figure(page, 'inflight.slots')).toBe(f.ofLimit(stats.slots_busy, stats.slots))
    expect(await figure(page, 'inflight.tasks')).toBe(f.ofLimit(stats.tasks.running, stats.limits.task_runner.concurrency))
    const { hits, misses } = stats.cache
    expect(hits).toBeGreaterThan(0)
    expect(await figure(page, 'cache.hits_misses')).toBe(`${f.count(hits)} / ${f.count(misses)}`)
    expect(await figure(page, 'cache.hit_rate')).toBe(f.percent(sig6(hits / (hits + misses))))
    for (const state of ['queued', 'running', 'done', 'failed', 'cancelled']) {
      expect(await figure(page, `tasks.${state}`)).toBe(f.count(stats.tasks[state]))
    }
    const latency = 'orch_backend_request_duration_seconds'
    expect(sumOf(samples, `${latency}_count`)).toBeGreaterThan(0)
    expect(await figure(page, 'latency.p50')).toBe(f.seconds(sig6(histogramQuantile(samples, latency, 0.5))))
    expect(await figure(page, 'latency.p99')).toBe(f.seconds(sig6(histogramQuantile(samples, latency, 0.99))))
    const ttft = 'orch_time_to_first_token_seconds'
    expect(sumOf(samples, `${ttft}_count`)).toBeGreaterThan(0)
    expect(await figure(page, 'ttft.p50')).toBe(f.seconds(sig6(histogramQuantile(samples, ttft, 0.5))))
    expect(await figure(page, 'ttft.p99')).toBe(f.seconds(sig6(histogramQuantile(samples, ttft, 0.99))))
    const tps = 'orch_tokens_per_second'
    const tpsCount = sumOf(samples, `${tps}_count`)
    expect(await figure(page, 'tokens.mean')).toBe(tpsCount > 0 ? f.perSecond(sig6(sumOf(samples, `${tps}_sum`) / tpsCount)) : f.NONE)
    // The backend's row: health and breaker in words, as orch_backend_up and orch_breaker_state say.
    const up = samples.find((s) => s.name === 'orch_backend_up' && s.labels.backend === 'fake0')?.value
    const breaker = samples.find((s) => s.name === 'orch_breaker_state' && s.labels.backend === 'fake0')?.value
    const row = page.locator('[data-table="backends"] tbody tr', { hasText: 'fake0' })
    await expect(row.innerText()).resolves.toContain(up === 1 ? '\tup\t' : '\tdown\t')
    expect(breaker).toBe(0)
    await expect(row.innerText()).resolves.toContain('\tclosed\t')
    await expect(row.innerText()).resolves.toContain(f.ofLimit(0, stats.limits.backends[0].concurrency))
  })

  test('overview is live: a task submitted elsewhere shows up through /events; the charts fill as it refreshes', async () => {
    const { page } = tab
    await expect(figure(page, 'live')).resolves.toBe('live')
    const doneBefore = Number(await figure(page, 'tasks.done'))
    // Keyboard focus on a link of the overview survives the refreshes.
    await page.locator('a[href="#/tasks?state=queued"]').focus()
    const submitted = await t.fetch('/queue/submit', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'generate', model: 'llama3.2', payload: { prompt: 'live one' } }),
    })
    const { id } = (await submitted.json()) as { id: string }
    await page.locator('.events li', { hasText: id }).first().waitFor({ timeout: 5000 })
    await t.fetch(`/tasks/${id}/wait?timeout=10s`)
    // The task's events refresh the figures at once, well before the next poll.
    await page.locator('[data-figure="tasks.done"]', { hasText: new RegExp(`^${doneBefore + 1}$`) }).waitFor({ timeout: 3000 })
    expect(await page.evaluate('document.activeElement.getAttribute("href")')).toBe('#/tasks?state=queued')
    // Two summaries a poll apart make the first point of each chart.
    await page.locator('.chart-summary', { hasText: 'Latest interval' }).first().waitFor({ timeout: 12_000 })
    expect(await page.locator('.chart canvas').count()).toBeGreaterThanOrEqual(2)
    await screenshots(page, 'overview')
    expect(tab.errors).toEqual([])
  }, 30_000)

  test('tasks: the list and its filters are the task API’s; the detail shows payload, result, attempts, timeline', async () => {
    const { page } = tab
    await page.getByRole('link', { name: 'Tasks' }).click()
    await page.locator('[data-table="tasks"]').waitFor()
    const all = (await (await t.fetch('/tasks?limit=100')).json()) as {
      tasks: Array<{ id: string; state: string; attempts: number; max_attempts: number }>
    }
    const ids = async () => page.locator('[data-table="tasks"] tbody tr td:first-child').allInnerTexts()
    expect(await ids()).toEqual(all.tasks.map((x) => x.id))
    // Filter with the keyboard: the state select, then submit.
    await page.getByLabel('State').selectOption('done')
    await page.getByLabel('Model').fill('llama3.2')
    await page.getByRole('button', { name: 'Show tasks' }).press('Enter')
    await page.waitForURL(/#\/tasks\?state=done&model=llama3\.2$/)
    await page.locator('[data-table="tasks"] caption', { hasText: 'model filter' }).waitFor()
    const done = (await (await t.fetch('/tasks?state=done')).json()) as { tasks: Array<{ id: string; model: string }> }
    expect(await ids()).toEqual(done.tasks.filter((x) => x.model === 'llama3.2').map((x) => x.id))
    await screenshots(page, 'tasks')

    const first = all.tasks.find((x) => x.state === 'done') as { id: string; attempts: number; max_attempts: number }
    await page.getByRole('link', { name: first.id }).click()
    await page.locator('[data-figure="task.state"]').waitFor()
    const task = (await (await t.fetch(`/tasks/${first.id}`)).json()) as any
    expect(await figure(page, 'task.state')).toBe(task.state)
    expect(await figure(page, 'task.attempts')).toBe(`${task.attempts} of ${task.max_attempts}`)
    expect(JSON.parse(await figure(page, 'task.payload'))).toEqual(task.payload)
    expect(JSON.parse(await figure(page, 'task.result'))).toEqual(task.result)
    const timeline = await figure(page, 'task.timeline')
    expect(timeline).toContain(`${f.time(task.created_at)} — submitted`)
    expect(timeline).toContain(`${f.time(task.finished_at)} — finished: done`)
    // A finished task cannot be cancelled: no button offers it.
    expect(await page.getByRole('button', { name: /Cancel task/ }).count()).toBe(0)
    await screenshots(page, 'task-detail')
    expect(tab.errors).toEqual([])
  }, 30_000)
})

describe('the dashboard, server.token set, its backend down', () => {
  let t: TestServe
  let tab: Awaited<ReturnType<typeof openTab>>
  let context: BrowserContext
  let queuedId = ''

  beforeAll(async () => {
    t = await startTestServe({
      tweak: (c) => {
        c.server.token = TOKEN
        // Nothing listens there: the health check fails, the runner claims nothing, tasks stay queued.
        c.backends = [{ name: 'down0', type: 'ollama', url: 'http://127.0.0.1:9', concurrency: 2 }]
      },
    })
    const r = await t.fetch('/queue/submit', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'generate', model: 'llama3.2', payload: { prompt: 'never runs' } }),
    })
    queuedId = ((await r.json()) as { id: string }).id
    tab = await openTab()
    context = tab.context
  })
  afterAll(async () => {
    await context?.close()
    await t?.stop()
  })

  const stateOf = async (id: string) => ((await (await t.fetch(`/tasks/${id}`)).json()) as { state: string }).state

  test('the page asks for the token, refuses a wrong one, and keeps the right one in sessionStorage only', async () => {
    const { page } = tab
    await page.goto(`${t.url}/ui#/overview`)
    const form = page.locator('form.token')
    await form.waitFor()
    await expect(form.innerText()).resolves.toContain('a bearer token is required')
    await screenshots(page, 'token-prompt')
    await page.getByLabel('Access token', { exact: true }).fill('not-the-token')
    await page.getByLabel('Access token', { exact: true }).press('Enter')
    await page.locator('form.token', { hasText: 'the bearer token is wrong' }).waitFor()
    expect(await page.locator('[data-figure="requests.total"]').count()).toBe(0)
    await page.getByLabel('Access token', { exact: true }).fill(TOKEN)
    await page.getByRole('button', { name: 'Use this token' }).click()
    await page.locator('[data-figure="requests.total"]').waitFor()
    expect(await page.locator('form.token').count()).toBe(0)
    const storage = await page.evaluate("({ session: sessionStorage.getItem('orch.token'), local: localStorage.length })")
    expect(storage).toEqual({ session: TOKEN, local: 0 })
    // The down backend, in words, as orch_backend_up says; the queued task counted as /stats counts it.
    const samples = parseMetrics(await (await t.fetch('/metrics')).text())
    expect(samples.find((s) => s.name === 'orch_backend_up' && s.labels.backend === 'down0')?.value).toBe(0)
    await expect(page.locator('[data-table="backends"] tbody tr', { hasText: 'down0' }).innerText()).resolves.toContain('\tdown\t')
    const stats = (await (await t.fetch('/stats')).json()) as any
    expect(await figure(page, 'queue.tasks_queued')).toBe(f.count(stats.tasks.queued))
    expect(await figure(page, 'queue.depth')).toBe(f.count(stats.queued))
    await screenshots(page, 'overview-token')
  }, 30_000)

  test('Cancel asks first; with a wrong token it cancels nothing; with the right one the task is cancelled', async () => {
    const { page } = tab
    await page.goto(`${t.url}/ui#/tasks/${queuedId}`)
    const cancel = page.getByRole('button', { name: 'Cancel task…' })
    await cancel.waitFor()
    expect(await figure(page, 'task.state')).toBe('queued')
    // Escape closes the question without a request.
    await cancel.click()
    await page.getByRole('dialog').waitFor()
    await screenshots(page, 'cancel-dialog')
    await page.keyboard.press('Escape')
    await page.getByRole('dialog').waitFor({ state: 'hidden' })
    expect(await stateOf(queuedId)).toBe('queued')

    // A wrong token in the tab: the confirmed cancel is refused and the page asks for the token again.
    await page.evaluate("sessionStorage.setItem('orch.token', 'wrong-token')")
    await cancel.click()
    await page.getByRole('button', { name: 'Cancel the task' }).click()
    await page.locator('[role="alert"]', { hasText: 'Not cancelled: the bearer token is wrong' }).waitFor()
    await page.locator('form.token').waitFor()
    expect(await stateOf(queuedId)).toBe('queued')

    // The right token, then the whole cancel by keyboard: focus starts on "Keep the task", Tab, Enter.
    await page.getByLabel('Access token', { exact: true }).fill(TOKEN)
    await page.getByLabel('Access token', { exact: true }).press('Enter')
    await page.getByRole('button', { name: 'Cancel task…' }).focus()
    await page.keyboard.press('Enter')
    await page.getByRole('dialog').waitFor()
    await page.keyboard.press('Tab')
    await page.keyboard.press('Enter')
    await page.locator('.notice', { hasText: `Task ${queuedId} is cancelled.` }).waitFor()
    expect(await stateOf(queuedId)).toBe('cancelled')
    expect(await figure(page, 'task.state')).toBe('cancelled')
    await screenshots(page, 'task-cancelled')
    // Only the refusals the test provoked: the browser reports each 401 it was answered.
    expect(tab.errors.filter((e) => !e.includes('status of 401'))).toEqual([])
  }, 30_000)
})
