/**
 * The HTTP app as a factory: `createApp(deps, routes)` returns a fetch handler, so tests call it without a
 * port. Routing and the error boundary are Hono's (its router decodes parameters without throwing; routes
 * without parameters are looked up in a map first, which picks the route Hono would); the
 * gates are orch's, in this order, before any route code runs:
 *   1. the request target: a missing or malformed Host header is a 400 (a browser always sends a valid one);
 *   2. Host must name this server (DNS rebinding), and a browser's request from another origin is refused
 *      (cross-site request forgery: `Origin` other than this server's own, `null` included, or
 *      `Sec-Fetch-Site` other than same-origin/none) — clients that send no Origin (curl, SDKs) pass;
 *   3. the bearer token (constant-time compare) on every route but the public ones.
 * Whatever a route or a gate throws, and whatever is thrown outside them, ends as a JSON error in the
 * route's dialect (orch, Ollama or OpenAI), never a stack or a message from the runtime, and is counted.
 */
import { timingSafeEqual } from 'node:crypto'
import { Hono } from 'hono'
import { RegExpRouter } from 'hono/router/reg-exp-router'
import { logger } from '../core/log.ts'
import type { RequestRecord } from '../metrics/engine-metrics.ts'
import { type AppDeps, type Dialect, errorResponse, httpError, type Route, type RouteContext, statusOf } from './http.ts'

/** What Bun.serve hands the fetch handler beside the request: per-request timeouts. */
export interface ServerHandle {
  timeout(request: Request, seconds: number): void
  /** Requests whose response has not finished (streams included). */
  readonly pendingRequests: number
}

export interface App {
  fetch(request: Request, server?: ServerHandle): Promise<Response>
  /** For Bun.serve's `error` option: what escaped everything else, as a JSON 500, counted. */
  fail(error: unknown): Response
  routes: Route[]
}

export interface AppOptions {
  /** Called once per request after the response is made (metrics). */
  onRequest?: (record: RequestRecord) => void
}

/** Per-request values carried through Hono as its `env`. */
interface RequestEnv {
  server: ServerHandle | undefined
  url: URL
  pattern: string
}

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]']
/** A Host header: a DNS name or IPv4 address, or a bracketed IPv6 address, with an optional port. */
const HOST_HEADER = /^(?:[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?|\[[0-9a-f:.]{2,45}\])(?::\d{1,5})?$/i
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])
/** Distinct Host header values remembered as passed (a name with many ports, say); past it, each is checked. */
const MAX_PASSED_HOSTS = 64

export function createApp(deps: AppDeps, routes: Route[], options: AppOptions = {}): App {
  const allowedHosts = new Set([...LOOPBACK_NAMES, deps.config.server.host, ...deps.config.server.allowed_hosts].map(normalHost))
  const token = deps.config.server.token
  const maxOpen = deps.config.server.max_open_requests
  const idleTimeoutS = deps.config.server.idle_timeout_s
  const log = logger('http')
  const hono = new Hono<{ Bindings: RequestEnv }>({ router: new RegExpRouter() })
  const patterns = routes.map((route) => ({ method: route.method, segments: split(route.path) }))

  const answer = (route: Route, request: Request, env: RequestEnv, params: Record<string, string>) => {
    env.pattern = route.path
    if (token && !route.public) checkToken(request, token)
    const ctx: RouteContext = { request, url: env.url, params, deps }
    const { server } = env
    return route.long && server ? answerLong(route, ctx, server) : route.handler(ctx)
  }
  for (const route of routes) {
    hono.on(route.method, route.path, (c) => answer(route, c.req.raw, c.env, c.req.param() as Record<string, string>))
  }
  const fixed = fixedRoutes(routes)
  /** Host headers that passed the checks (well-formed, naming this server), as they came; bounded. */
  const passedHosts = new Set<string>()

  /**
   * Long routes (streams, SSE, long-polls, model calls) may be quiet for minutes: exempt from the idle
   * timeout, bounded instead by their own timeouts and the client going away. The exemption is the
   * request's, not the connection's: once the answer is out (or refused), a keep-alive connection is held to
   * the idle timeout again.
   */
  async function answerLong(route: Route, ctx: RouteContext, server: ServerHandle): Promise<Response> {
    const restore = () => server.timeout(ctx.request, idleTimeoutS)
    server.timeout(ctx.request, 0)
    let response: Response
    try {
      response = await route.handler(ctx)
    } catch (error) {
      restore()
      throw error
    }
    return untilSent(response, restore)
  }
  hono.notFound((c) => {
    const { pathname } = c.env.url
    try {
      // Unknown paths need the token too: without it, nothing says which endpoints exist.
      if (token) checkToken(c.req.raw, token)
      const actual = split(pathname)
      const allowed = patterns.filter((p) => matches(p.segments, actual)).map((p) => p.method)
      if (allowed.length > 0) throw httpError(405, `${c.req.method} is not allowed on ${pathname} (allowed: ${allowed.join(', ')})`)
      throw httpError(404, `no such endpoint: ${c.req.method} ${pathname}`, 'E_NOT_FOUND')
    } catch (error) {
      return respond(error, c.req.raw, pathname)
    }
  })
  hono.onError((error, c) => respond(error, c.req.raw, c.env.url.pathname))

  /** The error as a response in the path's dialect; server faults are logged here, not shown to the client. */
  function respond(error: unknown, request: Request, path: string): Response {
    const dialect = dialectOf(path)
    // The client went away: nobody reads the answer and nothing failed on our side.
    if (request.signal.aborted && statusOf(error) >= 500) return errorResponse(httpError(499, 'the client closed the request'), dialect)
    const response = errorResponse(error, dialect)
    if (response.status >= 500) {
      const detail = error instanceof Error ? error.message : String(error)
      log.warn(`${request.method} ${path} → ${response.status}: ${detail}`)
      if (response.status === 500 && error instanceof Error && error.stack) log.debug(error.stack)
    }
    return response
  }

  async function handle(request: Request, server: ServerHandle | undefined): Promise<{ response: Response; pattern: string }> {
    // `url` is set before Hono sees the request (its handlers read it); until then a fault has no parsed URL.
    const env: RequestEnv = { server, url: undefined as unknown as URL, pattern: 'unmatched' }
    try {
      if (server && maxOpen > 0 && server.pendingRequests > maxOpen) {
        throw httpError(
          503,
          `more than ${maxOpen} requests are open (server.max_open_requests)`,
          'E_BUSY',
          { close: true },
          { retryAfterS: 1 },
        )
      }
      // A Request made in process (tests, app.fetch) has an absolute URL and no Host header; one from the
      // network without a Host header arrives with a bare path as its URL.
      const host = request.headers.get('host') ?? (request.url.startsWith('http') ? hostOfUrl(request.url) : null)
      // A client sends the same Host on every request: one that passed is not checked again.
      const known = host !== null && passedHosts.has(host)
      if (!known && (host === null || !HOST_HEADER.test(host))) {
        throw httpError(400, host === null ? 'the Host header is required' : 'the Host header is malformed', 'E_BAD_HOST')
      }
      const url = URL.parse(request.url)
      // CONNECT's authority form and other targets that are not a path.
      if (url === null) throw httpError(400, 'the request target is not a path', 'E_BAD_TARGET')
      env.url = url
      if (!known) {
        checkHost(normalHost(host as string), allowedHosts)
        if (passedHosts.size < MAX_PASSED_HOSTS) passedHosts.add(host as string)
      }
      checkSite(request, host as string)
      // Most requests name a route without parameters: found in a map, without Hono's router and context.
      const path = request.method === 'HEAD' ? undefined : plainPath(request.url)
      const route = path === undefined ? undefined : fixed.get(request.method)?.get(path)
      const response = route ? await answer(route, request, env, {}) : await hono.fetch(request, env)
      return { response, pattern: env.pattern }
    } catch (error) {
      return { response: respond(error, request, env.url?.pathname ?? pathOf(request.url)), pattern: env.pattern }
    }
  }

  return {
    routes,
    async fetch(request, server) {
      const started = performance.now()
      const { response, pattern } = await handle(request, server)
      options.onRequest?.({ method: request.method, route: pattern, status: response.status, ms: performance.now() - started })
      return response
    },
    fail(error) {
      log.warn(`request failed outside the app: ${error instanceof Error ? error.message : String(error)}`)
      options.onRequest?.({ method: 'UNKNOWN', route: 'unmatched', status: 500, ms: 0 })
      return errorResponse(new Error('internal error'), 'orch')
    },
  }
}

const STREAMED = /event-stream|x-ndjson/

/** Calls `done` once `response` is sent: at once for a whole body, when a stream ends for a streamed one. */
function untilSent(response: Response, done: () => void): Response {
  // The content type first: reading `response.body` of a whole answer would turn it into a stream.
  if (!STREAMED.test(response.headers.get('content-type') ?? '') || !response.body) {
    done()
    return response
  }
  const body = response.body.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({ flush: done }))
  return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers })
}

/**
 * Routes without parameters by method and path. Where two share both, the first answers, as in Hono (whose
 * router refuses a fixed path that a parameter route of the same method also matches).
 */
function fixedRoutes(routes: Route[]): Map<string, Map<string, Route>> {
  const fixed = new Map<string, Map<string, Route>>()
  for (const route of routes) {
    if (/[:*?]/.test(route.path)) continue
    const byPath = fixed.get(route.method) ?? new Map<string, Route>()
    if (!byPath.has(route.path)) byPath.set(route.path, route)
    fixed.set(route.method, byPath)
  }
  return fixed
}

/**
 * The path of a request URL as Hono's router reads it, when that is the text as it came: undefined for a
 * path with a percent escape (Hono decodes it) or a URL without one.
 */
function plainPath(url: string): string | undefined {
  const start = url.indexOf('/', url.indexOf(':') + 4)
  if (start < 0) return undefined
  let end = start
  for (; end < url.length; end++) {
    const c = url.charCodeAt(end)
    if (c === PERCENT) return undefined
    if (c === QUESTION || c === HASH) break
  }
  return url.slice(start, end)
}

const PERCENT = 37
const QUESTION = 63
const HASH = 35

/** The path of a request URL without parsing it (a malformed one still has a dialect). */
function pathOf(url: string): string {
  const scheme = url.indexOf('://')
  const start = scheme < 0 ? 0 : url.indexOf('/', scheme + 3)
  if (start < 0) return '/'
  const query = url.indexOf('?', start)
  return query < 0 ? url.slice(start) : url.slice(start, query)
}

function dialectOf(path: string): Dialect {
  if (path.startsWith('/api/')) return 'ollama'
  if (path === '/v1' || path.startsWith('/v1/')) return 'openai'
  return 'orch'
}

function hostOfUrl(url: string): string | null {
  return URL.parse(url)?.host ?? null
}

/** `Host: LOCALHOST:9097` → `localhost`; `[::1]:9097` → `[::1]`. */
function normalHost(host: string): string {
  const h = host.toLowerCase()
  if (h === '::1') return '[::1]'
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1)
  const colon = h.indexOf(':')
  return colon < 0 ? h : h.slice(0, colon)
}

/** Host must name this server: a page on another site cannot reach it by rebinding its DNS name. */
function checkHost(host: string, allowed: Set<string>): void {
  if (!allowed.has(host)) {
    throw httpError(403, `host "${host}" is not allowed; add it to server.allowed_hosts if this is intended`, 'E_HOST_NOT_ALLOWED')
  }
}

/**
 * A browser names the page that sent a request in Origin (`null` for sandboxed frames, data: pages, some
 * redirects) and, in current browsers, Sec-Fetch-Site. Only this server's own origin may send anything but
 * a safe method; an Origin from elsewhere is refused on every method. Requests without either header are
 * not from a web page (curl, SDKs) and pass.
 */
function checkSite(request: Request, host: string): void {
  const origin = request.headers.get('origin')
  if (origin !== null && !sameOrigin(origin, host)) {
    throw httpError(403, `origin "${origin.slice(0, 200)}" is not allowed: orch serve answers only its own pages`, 'E_ORIGIN_NOT_ALLOWED')
  }
  if (SAFE_METHODS.has(request.method)) return
  const site = request.headers.get('sec-fetch-site')
  if (site !== null && site !== 'same-origin' && site !== 'none') {
    throw httpError(403, `a ${site} request from a web page cannot change anything here`, 'E_ORIGIN_NOT_ALLOWED')
  }
}

function sameOrigin(origin: string, host: string): boolean {
  const h = host.toLowerCase()
  const o = origin.toLowerCase()
  return o === `http://${h}` || o === `https://${h}`
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
