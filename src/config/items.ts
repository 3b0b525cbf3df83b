/** Checks that span the items of a list-shaped section (`pools`, `backends`), reported as schema issues. */
import * as v from 'valibot'

/** A problem found across list items, pointed at one key of one item. */
export interface ItemProblem {
  index: number
  key: string
  message: string
}

export const asRecord = (value: unknown): Record<string, unknown> =>
  value && typeof value === 'object' ? (value as Record<string, unknown>) : {}

/** Names must be unique; the first holder of a name keeps it. */
export function duplicateNames(items: unknown[], what: string): ItemProblem[] {
  const seen = new Map<string, number>()
  const problems: ItemProblem[] = []
  items.forEach((item, index) => {
    const itemName = asRecord(item).name
    if (typeof itemName !== 'string') return
    const first = seen.get(itemName)
    if (first === undefined) seen.set(itemName, index)
    else problems.push({ index, key: 'name', message: `duplicate ${what} name "${itemName}" (already used by item ${first})` })
  })
  return problems
}

/** Turn item problems into valibot issues at `[index].key`, so they travel with the schema's own issues. */
export function itemCheck<T extends unknown[]>(check: (items: unknown[]) => ItemProblem[]): v.RawCheckAction<T> {
  return v.rawCheck<T>(({ dataset, addIssue }) => {
    const value: unknown = dataset.value
    const items: unknown[] = Array.isArray(value) ? value : []
    for (const problem of check(items)) {
      const item = asRecord(items[problem.index])
      addIssue({
        message: problem.message,
        input: item[problem.key],
        path: [
          { type: 'array', origin: 'value', input: items, key: problem.index, value: item },
          { type: 'object', origin: 'value', input: item, key: problem.key, value: item[problem.key] },
        ],
      })
    }
  })
}
