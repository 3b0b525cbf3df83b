/**
 * Pages by hash: `#/overview`, `#/tasks?state=queued`, `#/tasks/ID`. A page is one value in pages.ts: its
 * path pattern (`:name` binds a segment), its title, and whether the navigation lists it.
 */

export interface PageContext {
  main: HTMLElement
  params: Record<string, string>
  query: URLSearchParams
  /** Aborted when the viewer leaves the page: stop timers and streams. */
  signal: AbortSignal
  /** An API call failed: a 401 asks for the token, anything else is shown in `where`. */
  failed(error: unknown, where: HTMLElement): void
  navigate(hash: string): void
}

export interface Page {
  path: string
  title(params: Record<string, string>): string
  /** The page's name in the navigation; pages without one are reached through links. */
  nav?: string
  render(ctx: PageContext): void
}

export interface Match {
  page: Page
  params: Record<string, string>
  query: URLSearchParams
}

/** `/tasks/abc?x=1` against the pages, first match wins. */
export function matchPage(pages: readonly Page[], target: string): Match | undefined {
  const q = target.indexOf('?')
  const path = q < 0 ? target : target.slice(0, q)
  const query = new URLSearchParams(q < 0 ? '' : target.slice(q + 1))
  const actual = path.split('/').filter(Boolean)
  for (const page of pages) {
    const pattern = page.path.split('/').filter(Boolean)
    if (pattern.length !== actual.length) continue
    const params: Record<string, string> = {}
    const ok = pattern.every((segment, i) => {
      const value = actual[i] as string
      if (!segment.startsWith(':')) return segment === value
      try {
        params[segment.slice(1)] = decodeURIComponent(value)
        return true
      } catch {
        return false
      }
    })
    if (ok) return { page, params, query }
  }
  return undefined
}
