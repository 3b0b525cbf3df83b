/** Placeholder: replaced by its route group. */
import type { AppDeps, Route } from '../http.ts'

export function metricsRoutes(_deps: AppDeps): Route[] {
  return []
}
