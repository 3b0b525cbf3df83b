/**
 * GET /metrics: every series in the Prometheus text format 0.0.4. Not public: with server.token set,
 * Prometheus sends it (`authorization: { credentials: <token> }` in its scrape config).
 */
import type { Route } from '../http.ts'

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

export function metricsRoutes(): Route[] {
  return [
    {
      method: 'GET',
      path: '/metrics',
      handler: async ({ deps }) => new Response(await deps.metrics.render(), { headers: { 'content-type': PROMETHEUS_CONTENT_TYPE } }),
    },
  ]
}
