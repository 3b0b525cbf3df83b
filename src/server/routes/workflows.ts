/** Placeholder: replaced by its route group. */
import type { AppDeps, Route } from '../http.ts'

export function workflowRoutes(_deps: AppDeps): Route[] {
  return []
}
