/**
 * Autoscaling over HTTP (docs/http-api.md#scaling): `GET /scale` is every pool's size, bounds and last
 * decisions; `POST /scale/{pool}` with `{"workers": N}` sizes a pool by hand (orchestrator_mode: manual
 * only; 409 otherwise, saying why).
 */
import { type AppDeps, httpError, json, type Route, type RouteContext, readJsonValue } from '../http.ts'

export function scaleRoutes(): Route[] {
  return [
    { method: 'GET', path: '/scale', handler: ({ deps }) => json(statusOf(deps)) },
    { method: 'POST', path: '/scale/:pool', handler: set },
  ]
}

function statusOf(deps: AppDeps) {
  return deps.scale?.status() ?? { mode: 'off', interval_s: null, pools: [], counts: { up: 0, down: 0 } }
}

async function set(ctx: RouteContext): Promise<Response> {
  const body = (await readJsonValue(ctx)) as { workers?: unknown } | undefined
  const workers = body?.workers
  if (typeof workers !== 'number' || !Number.isInteger(workers) || workers < 0) {
    throw httpError(400, `workers: expected a whole number of workers, 0 or more, got ${JSON.stringify(workers)}`, 'E_VALIDATION', {
      field: 'workers',
    })
  }
  const { scale } = ctx.deps
  if (!scale) throw httpError(404, 'this orch has no pools to scale (add one under pools:)', 'E_SCALE_POOL')
  return json(await scale.set(ctx.params.pool ?? '', workers))
}
