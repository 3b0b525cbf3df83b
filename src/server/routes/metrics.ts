/**
 * GET /metrics: every series in the Prometheus text format 0.0.4. Not public: with server.token set,
 * Prometheus sends it (`authorization: { credentials: <token> }` in its scrape config).
 */
import { metricsService } from '../../metrics/extension.ts'
import { type AppDeps, httpError, type Route } from '../http.ts'

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

export function metricsRoutes(_deps: AppDeps): Route[] {
  return [
    {
      method: 'GET',
      path: '/metrics',
      handler: ({ deps }) => {
        const service = metricsService(deps)
        if (!service) throw httpError(503, 'the metrics service is not running', 'E_METRICS_UNAVAILABLE')
        return new Response(service.render(), { headers: { 'content-type': PROMETHEUS_CONTENT_TYPE } })
      },
    },
  ]
}
