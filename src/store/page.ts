/** The one rule of list pages (tasks, workflows, runs): `limit` items at a time, 1 to MAX_PAGE, DEFAULT_PAGE when not given. */
export const DEFAULT_PAGE = 50
export const MAX_PAGE = 1000

/** A page size within the rule, whatever a library caller passed. */
export function pageSize(limit: number | undefined): number {
  return Math.min(MAX_PAGE, Math.max(1, Math.trunc(limit ?? DEFAULT_PAGE)))
}
