/**
 * The dashboard's browser tests: Debian's chromium driven by playwright-core, tabs that record console
 * errors, screenshots at a desktop and a phone width (saved under a temp dir and copied to /tmp/ui-shots/
 * for a person to look at), and the /metrics arithmetic the tests compare the pages' figures with.
 */
import { afterAll, beforeAll, expect } from 'bun:test'
import { copyFileSync, existsSync, mkdirSync } from 'node:fs'
import { basename, join } from 'node:path'
import { type Browser, chromium, type Page } from 'playwright-core'
import { tempDir } from './cli.ts'

export const CHROMIUM = '/usr/bin/chromium'
const SHOTS_COPY = '/tmp/ui-shots'
export const VIEWPORTS = { desktop: { width: 1280, height: 800 }, phone: { width: 375, height: 800 } } as const

/**
 * One chromium for the test file (launched before its tests, closed after), with tabs and screenshots.
 * Without chromium the tests fail, saying how to install it.
 */
export function useBrowser(shotsPrefix: string) {
  const shots = tempDir(shotsPrefix)
  let browser: Browser | undefined
  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`the dashboard's browser test needs chromium at ${CHROMIUM}: apt-get install chromium`)
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
    mkdirSync(SHOTS_COPY, { recursive: true })
  })
  afterAll(async () => {
    await browser?.close()
    shots.cleanup()
  })

  /**
   * A tab that records console errors and uncaught exceptions. Code run in the page is passed as text: the
   * tests are typed without the DOM's globals.
   */
  async function openTab(viewport: { width: number; height: number } = VIEWPORTS.desktop) {
    if (!browser) throw new Error('the browser is not started')
    const context = await browser.newContext({ viewport })
    const page = await context.newPage()
    const errors: string[] = []
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text())
    })
    page.on('pageerror', (error) => errors.push(`uncaught: ${error.message}`))
    return { context, page, errors }
  }

  /** Both viewports of what `page` shows now, saved and copied; the page is left at the desktop size. */
  async function screenshots(page: Page, name: string): Promise<void> {
    for (const [size, viewport] of Object.entries(VIEWPORTS)) {
      await page.setViewportSize(viewport)
      await Bun.sleep(150) // the charts follow their container's new width
      const path = join(shots.path, `${name}-${size}.png`)
      await page.screenshot({ path, fullPage: true })
      copyFileSync(path, join(SHOTS_COPY, basename(path)))
      console.log(`screenshot: ${path} (copied to ${join(SHOTS_COPY, basename(path))})`)
      if (size === 'phone') {
        // Readable at a phone's width: nothing wider than the screen but inside its own scrolling box.
        const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth')
        expect(overflow).toBeLessThanOrEqual(0)
      }
    }
    await page.setViewportSize(VIEWPORTS.desktop)
  }

  return { openTab, screenshots }
}

/** The text of the first element showing figure `key` (`data-figure`). */
export const figure = (page: Page, key: string) => page.locator(`[data-figure="${key}"]`).first().innerText()

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

type Where = (labels: Record<string, string>) => boolean
const all: Where = () => true

export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = []
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m || line.startsWith('#')) continue
    const labels: Record<string, string> = {}
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k as string] = v as string
    out.push({ name: m[1] as string, labels, value: m[3] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[3]) })
  }
  return out
}

/** histogram_quantile(q, sum by (le) (family_bucket{…})) over the samples `where` keeps, as Prometheus computes it. */
export function histogramQuantile(samples: Sample[], family: string, q: number, where: Where = all): number | null {
  const byLe = new Map<number, number>()
  for (const s of samples.filter((x) => x.name === `${family}_bucket` && where(x.labels))) {
    const le = s.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(s.labels.le)
    byLe.set(le, (byLe.get(le) ?? 0) + s.value)
  }
  const buckets = [...byLe.entries()].sort((a, b) => a[0] - b[0])
  const total = buckets.at(-1)?.[1] ?? 0
  if (total === 0) return null
  const rank = q * total
  const i = buckets.findIndex(([, c]) => c >= rank)
  if (i === buckets.length - 1) return (buckets[buckets.length - 2] as [number, number])[0]
  const [upper, cum] = buckets[i] as [number, number]
  const [lower, below] = i === 0 ? [0, 0] : (buckets[i - 1] as [number, number])
  return lower + ((upper - lower) * (rank - below)) / (cum - below)
}

export const sumOf = (samples: Sample[], name: string, where: Where = all) =>
  samples.filter((s) => s.name === name && where(s.labels)).reduce((a, s) => a + s.value, 0)

/** Six significant digits, as the page rounds what it shows. */
export const sig6 = (x: number | null) => (x === null ? null : Number(x.toPrecision(6)))
