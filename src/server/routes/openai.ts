/** Placeholder: replaced by its route group. */
import type { AppDeps, Route } from '../http.ts'

export function openaiRoutes(_deps: AppDeps): Route[] {
  return []
}
