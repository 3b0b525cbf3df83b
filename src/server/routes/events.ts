/** Placeholder: replaced by its route group. */
import type { AppDeps, Route } from '../http.ts'

export function eventRoutes(_deps: AppDeps): Route[] {
  return []
}
