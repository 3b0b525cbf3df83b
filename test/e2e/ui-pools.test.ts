/**
 * The dashboard's backends-and-pools and logs pages in a real browser (Debian's chromium through
 * playwright-core), against a real orch serve whose pool runs real workers (test/helpers/model-server.ts as
 * `command` workers): each worker's figures are those of GET /pools; a worker SIGKILLed by the test shows as
 * down, then healthy again with one restart more; Restart from the page (after its question) brings a new
 * process; the logs page shows a worker's lines and, with Follow, lines written after it opened (held while
 * paused), as text. No console errors. Screenshots at 1280×800 and 375×800 go to a temp dir and
 * /tmp/ui-shots/.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { appendFileSync } from 'node:fs'
import type { Page } from 'playwright-core'
import { workerLogPath } from '../../src/core/home.ts'
import * as f from '../../src/ui/format.ts'
import { figure, useBrowser } from '../helpers/browser.ts'
import { twoWorkerPool } from '../helpers/command-pool.ts'
import { startTestServe, type TestServe } from '../helpers/serve.ts'

const T = 60_000
const { openTab, screenshots } = useBrowser('orch-ui-pools-shots-')

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const got = await probe()
    if (got !== undefined) return got
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`)
    await Bun.sleep(50)
  }
}

interface ApiWorker {
  id: string
  pid: number | null
  port: number | null
  gpu: string | null
  state: string
  restarts: number
  served: number
  inflight: number
  uptime_s: number | null
}

describe('the backends-and-pools and logs pages', () => {
  let t: TestServe
  let tab: Awaited<ReturnType<typeof openTab>>
  const workers = async () => ((await (await t.fetch('/pools')).json()) as { workers: ApiWorker[] }).workers
  const worker = async (id: string) => (await workers()).find((w) => w.id === id) as ApiWorker

  beforeAll(async () => {
    const config = twoWorkerPool()
    t = await startTestServe({
      tweak: (c) => {
        c.pools = config.pools
        c.heartbeat = config.heartbeat
      },
    })
    await until('both workers healthy', async () => {
      const ws = await workers()
      return ws.length === 2 && ws.every((w) => w.state === 'healthy') ? true : undefined
    })
    for (let i = 0; i < 3; i++) {
      const r = await t.fetch('/api/chat', {
        method: 'POST',
        body: JSON.stringify({ model: 'test-model', messages: [{ role: 'user', content: `hi ${i}` }], stream: false }),
      })
      expect(r.status).toBe(200)
    }
    tab = await openTab()
  }, T)
  afterAll(async () => {
    await tab?.context.close()
    await t?.stop()
  })

  /** The page's figures of a worker, as text. */
  const shown = async (page: Page, id: string) => ({
    state: await figure(page, `worker.${id}.state`),
    pid: await figure(page, `worker.${id}.pid`),
    port: await figure(page, `worker.${id}.port`),
    gpu: await figure(page, `worker.${id}.gpu`),
    restarts: await figure(page, `worker.${id}.restarts`),
    served: await figure(page, `worker.${id}.served`),
    inflight: await figure(page, `worker.${id}.inflight`),
  })
  const expected = (w: ApiWorker) => ({
    state: w.state,
    pid: w.pid === null ? '—' : String(w.pid),
    port: w.port === null ? '—' : String(w.port),
    gpu: w.gpu ?? 'none',
    restarts: f.count(w.restarts),
    served: f.count(w.served),
    inflight: f.count(w.inflight),
  })

  test(
    'each worker is shown with the figures of GET /pools, and every backend with its health',
    async () => {
      const { page } = tab
      await page.goto(`${t.url}/ui#/pools`)
      await page.locator('[data-figure="worker.gen-2.state"]').waitFor()
      await expect(figure(page, 'live')).resolves.toBe('live')
      // The page's reading against the API's, read back to back until no refresh fell between them.
      for (const id of ['gen-1', 'gen-2']) {
        await until(`${id} as GET /pools shows it`, async () => {
          const api = await worker(id)
          return JSON.stringify(await shown(page, id)) === JSON.stringify(expected(api)) ? true : undefined
        })
        const api = await worker(id)
        expect(await shown(page, id)).toEqual(expected(api))
        expect(api.state).toBe('healthy')
        expect(await figure(page, `worker.${id}.uptime`)).toMatch(/^\d+ s$|^\d+ min \d\d s$/)
      }
      const served = (await workers()).reduce((n, w) => n + w.served, 0)
      expect(served).toBe(3)
      // Every backend: the configured one and both pool workers, health in words.
      const rows = await page.locator('[data-table="backends"] tbody tr').allInnerTexts()
      expect(rows.map((r) => r.split('\t')[0]).sort()).toEqual(['fake0', 'gen/gen-1', 'gen/gen-2'])
      const backends = ((await (await t.fetch('/pools')).json()) as { backends: Array<{ name: string; healthy: boolean | null }> }).backends
      for (const b of backends) {
        const row = rows.find((r) => r.startsWith(`${b.name}\t`)) as string
        expect(row).toContain(`\t${f.health(b.healthy)}\t`)
      }
      expect(rows.find((r) => r.startsWith('fake0\t'))).toContain('\tup\t')
      await screenshots(page, 'pools')
      expect(tab.errors).toEqual([])
    },
    T,
  )

  test(
    'a worker killed with SIGKILL shows as down, then healthy again with one restart more',
    async () => {
      const { page } = tab
      const before = await worker('gen-1')
      // Every state the page shows for gen-1, recorded in the page as it changes.
      await page.evaluate(`(() => {
        window.__states = []
        const record = () => {
          const cell = document.querySelector('[data-figure="worker.gen-1.state"]')
          const text = cell ? cell.textContent : null
          if (text && window.__states.at(-1) !== text) window.__states.push(text)
        }
        new MutationObserver(record).observe(document.getElementById('main'), { subtree: true, childList: true, characterData: true })
        record()
      })()`)
      process.kill(-(before.pid as number), 'SIGKILL')
      const after = await until('gen-1 healthy again with a new process', async () => {
        const w = await worker('gen-1')
        return w.state === 'healthy' && w.pid !== before.pid ? w : undefined
      })
      expect(after.restarts).toBe(before.restarts + 1)
      await page
        .locator('[data-figure="worker.gen-1.restarts"]', { hasText: new RegExp(`^${before.restarts + 1}$`) })
        .waitFor({ timeout: 10_000 })
      await page.locator('[data-figure="worker.gen-1.pid"]', { hasText: new RegExp(`^${after.pid}$`) }).waitFor({ timeout: 10_000 })
      expect(await figure(page, 'worker.gen-1.state')).toBe('healthy')
      const states = (await page.evaluate('window.__states')) as string[]
      expect(states[0]).toBe('healthy')
      expect(states.at(-1)).toBe('healthy')
      // Down in between, said in words: unhealthy (waiting to restart), then starting.
      expect(states.some((s) => s === 'unhealthy' || s === 'starting')).toBe(true)
      expect(tab.errors).toEqual([])
    },
    T,
  )

  test(
    'Restart asks first; kept, nothing happens; confirmed, the worker gets a new process',
    async () => {
      const { page } = tab
      const before = await worker('gen-2')
      const restart = page.getByRole('button', { name: 'Restart gen-2…' })
      await restart.click()
      const dialog = page.getByRole('dialog')
      await dialog.waitFor()
      await expect(dialog.innerText()).resolves.toContain('Restart worker gen-2?')
      // Focus starts on the safe choice; Escape closes without a request.
      expect(await page.evaluate('document.activeElement.textContent')).toBe('Keep it running')
      await page.keyboard.press('Escape')
      await dialog.waitFor({ state: 'hidden' })
      await Bun.sleep(300)
      expect(await worker('gen-2')).toMatchObject({ pid: before.pid, state: 'healthy' })

      await restart.click()
      await dialog.waitFor()
      await screenshots(page, 'pools-restart-dialog')
      await page.getByRole('button', { name: 'Restart gen-2', exact: true }).click()
      await page.locator('.notice', { hasText: 'Restarting worker gen-2.' }).waitFor()
      const after = await until('gen-2 healthy with a new pid', async () => {
        const w = await worker('gen-2')
        return w.state === 'healthy' && w.pid !== before.pid ? w : undefined
      })
      await page.locator('[data-figure="worker.gen-2.pid"]', { hasText: new RegExp(`^${after.pid}$`) }).waitFor({ timeout: 10_000 })
      expect(await figure(page, 'worker.gen-2.state')).toBe('healthy')
      // The sibling kept its process.
      expect((await worker('gen-1')).state).toBe('healthy')
      expect(tab.errors).toEqual([])
    },
    T,
  )

  test(
    'logs: a worker’s last lines, then with Follow lines written after opening, held while paused, as text',
    async () => {
      const { page } = tab
      await page.getByRole('link', { name: 'Logs' }).click()
      await page.getByLabel('Log', { exact: true }).selectOption('gen-1')
      await page.getByRole('button', { name: 'Show' }).click()
      await page.waitForURL(/#\/logs\?source=gen-1&lines=200$/)
      const lines = page.locator('[data-figure="log.lines"]')
      // Two runs of gen-1 so far (the first was killed): both said where they listened.
      const api = (await (await t.fetch('/logs?source=gen-1&lines=200')).json()) as { lines: string[] }
      expect(api.lines.filter((l) => l.startsWith('model-server pid')).length).toBeGreaterThanOrEqual(2)
      await page.locator('[data-figure="log.lines"]', { hasText: `listening on 127.0.0.1:${(await worker('gen-1')).port}` }).waitFor()
      expect((await lines.innerText()).trimEnd()).toBe(api.lines.join('\n'))

      const file = workerLogPath(t.home, 'gen', 'gen-1')
      await page.getByRole('button', { name: 'Follow' }).click()
      await page.locator('[data-figure="log.state"]', { hasText: 'following' }).waitFor()
      expect(await page.getByRole('button', { name: 'Follow' }).getAttribute('aria-pressed')).toBe('true')
      await Bun.sleep(400)
      appendFileSync(file, 'written after the page opened\n')
      await page.locator('[data-figure="log.lines"]', { hasText: 'written after the page opened' }).waitFor({ timeout: 5000 })

      // Paused: new lines are held and counted, not shown, until resumed.
      await page.getByRole('button', { name: 'Pause' }).click()
      appendFileSync(file, 'held while paused <img src=x onerror="window.__owned=1">\n')
      await page.locator('[data-figure="log.state"]', { hasText: '1 new line held' }).waitFor({ timeout: 5000 })
      expect(await lines.innerText()).not.toContain('held while paused')
      expect(await page.getByRole('button', { name: 'Pause' }).getAttribute('aria-pressed')).toBe('true')
      await page.getByRole('button', { name: 'Pause' }).click()
      await page.locator('[data-figure="log.lines"]', { hasText: 'held while paused <img src=x' }).waitFor()
      // Text, never markup: no element came from the log.
      expect(await page.locator('[data-figure="log.lines"] *').count()).toBe(0)
      expect(await page.evaluate('window.__owned === undefined')).toBe(true)
      await screenshots(page, 'logs')
      // Follow off: the stream is closed, what was shown stays.
      await page.getByRole('button', { name: 'Follow' }).click()
      expect(await page.getByRole('button', { name: 'Follow' }).getAttribute('aria-pressed')).toBe('false')
      expect(await lines.innerText()).toContain('written after the page opened')
      expect(tab.errors).toEqual([])
    },
    T,
  )
})
