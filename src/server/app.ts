/**
 * The HTTP app as a factory: `createApp(deps, routes)` returns a fetch handler, so tests call it without a
 * port. Every request passes the same gates in order: Host/Origin allow-list (DNS rebinding), bearer token
 * (constant-time compare), route match; bodies are capped and validated inside the routes (http.ts).
 */
import { timingSafeEqual } from 'node:crypto'
import { logger } from '../log.ts'
import { type AppDeps, type Dialect, errorResponse, httpError, type Route, type RouteContext } from './http.ts'

export interface RequestRecord {
  method: string
  /** The route pattern (`/tasks/:id`), or `unmatched`: bounded label cardinality for metrics. */
  route: string
  status: number
  ms: number
}

export interface App {
  fetch(request: Request): Promise<Response>
  routes: Route[]
}

export interface AppOptions {
  /** Called once per request after the response is made (metrics). */
  onRequest?: (record: RequestRecord) => void
}

interface CompiledRoute {
  route: Route
  segments: string[]
}

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '[::1]', '::1'])

export function createApp(deps: AppDeps, routes: Route[], options: AppOptions = {}): App {
  const compiled: CompiledRoute[] = routes.map((route) => ({ route, segments: split(route.path) }))
  // Routes without parameters are found by one map lookup: the hot paths (/queue/submit, /api/chat) do no array work.
  const exact = new Map<string, Route>()
  for (const { route } of compiled) {
    const key = `${route.method} ${route.path}`
    if (!route.path.includes(':') && !exact.has(key)) exact.set(key, route)
  }
  const allowedHosts = new Set(
    [...LOOPBACK_NAMES, deps.config.server.host, ...deps.config.server.allowed_hosts].map((h) => h.toLowerCase()),
  )
  const token = deps.config.server.token
  const log = logger('http')

  async function handle(request: Request): Promise<{ response: Response; pattern: string }> {
    const url = new URL(request.url)
    const direct = exact.get(`${request.method === 'HEAD' ? 'GET' : request.method} ${url.pathname}`)
    const match = direct ? { route: direct, params: {} } : find(compiled, request.method, url.pathname)
    const dialect: Dialect = match?.route.dialect ?? dialectOf(url.pathname)
    try {
      checkHost(request, allowedHosts)
      if (token && !match?.route.public) checkToken(request, token)
      if (!match) {
        const allowed = compiled.filter((c) => matches(c.segments, split(url.pathname))).map((c) => c.route.method)
        if (allowed.length > 0) throw httpError(405, `${request.method} is not allowed on ${url.pathname} (allowed: ${allowed.join(', ')})`)
        throw httpError(404, `no such endpoint: ${request.method} ${url.pathname}`, 'E_NOT_FOUND')
      }
      const ctx: RouteContext = { request, url, params: match.params, deps }
      return { response: await match.route.handler(ctx), pattern: match.route.path }
    } catch (error) {
      const response = errorResponse(error, dialect)
      if (response.status >= 500) log.warn(`${request.method} ${url.pathname} → ${response.status}: ${(error as Error).message}`)
      return { response, pattern: match?.route.path ?? 'unmatched' }
    }
  }

  return {
    routes,
    async fetch(request) {
      const started = performance.now()
      const { response, pattern } = await handle(request)
      options.onRequest?.({ method: request.method, route: pattern, status: response.status, ms: performance.now() - started })
      return response
    },
  }
}

function dialectOf(path: string): Dialect {
  if (path.startsWith('/api/')) return 'ollama'
  if (path.startsWith('/v1/')) return 'openai'
  return 'orch'
}

/** Host and Origin must name this server: a web page on another origin cannot drive it (DNS rebinding, CSRF). */
function checkHost(request: Request, allowed: Set<string>): void {
  const host = hostname(request.headers.get('host'))
  if (host !== undefined && !allowed.has(host)) {
    throw httpError(403, `host "${host}" is not allowed; add it to server.allowed_hosts if this is intended`, 'E_HOST_NOT_ALLOWED')
  }
  const origin = request.headers.get('origin')
  if (origin && origin !== 'null') {
    let originHost: string | undefined
    try {
      originHost = new URL(origin).hostname.toLowerCase()
    } catch {
      originHost = undefined
    }
    if (!originHost || !allowed.has(originHost)) throw httpError(403, `origin "${origin}" is not allowed`, 'E_ORIGIN_NOT_ALLOWED')
  }
}

function hostname(header: string | null): string | undefined {
  if (!header) return undefined
  const h = header.toLowerCase()
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1)
  return h.split(':')[0]
}

function checkToken(request: Request, token: string): void {
  const header = request.headers.get('authorization') ?? ''
  const given = header.startsWith('Bearer ') ? header.slice(7) : ''
  const a = Buffer.from(given)
  const b = Buffer.from(token)
  // Compare equal lengths only; timingSafeEqual throws otherwise, and a length mismatch is a refusal anyway.
  const ok = a.length === b.length && timingSafeEqual(a, b)
  if (!ok) {
    throw httpError(
      401,
      given ? 'the bearer token is wrong' : 'a bearer token is required (Authorization: Bearer <server.token>)',
      'E_UNAUTHORIZED',
    )
  }
}

function split(path: string): string[] {
  return path.split('/').filter(Boolean)
}

function matches(pattern: string[], actual: string[]): boolean {
  return pattern.length === actual.length && pattern.every((p, i) => p.startsWith(':') || p === actual[i])
}

function find(routes: CompiledRoute[], method: string, path: string): { route: Route; params: Record<string, string> } | undefined {
  const actual = split(path)
  for (const { route, segments } of routes) {
    if (route.method !== method && !(method === 'HEAD' && route.method === 'GET')) continue
    if (!matches(segments, actual)) continue
    const params: Record<string, string> = {}
    segments.forEach((p, i) => {
      if (p.startsWith(':')) params[p.slice(1)] = decodeURIComponent(actual[i] as string)
    })
    return { route, params }
  }
  return undefined
}
