import { describe, expect, test } from 'bun:test'
import { waitingReason } from '../../src/server/routes/tasks.ts'
import type { Task } from '../../src/tasks/queue.ts'

/** Just what waitingReason reads of a backend: its name and URL, whether it is usable, which models it serves. */
function backend(name: string, usable: boolean, models?: string[]) {
  return { name, backend: { url: `http://${name}:11434` }, usable, serves: (m: string) => models === undefined || models.includes(m) }
}
const deps = (...states: ReturnType<typeof backend>[]) =>
  ({ engine: { backends: () => states } }) as unknown as Parameters<typeof waitingReason>[0]
const task = (over: Partial<Task> = {}) =>
  ({ state: 'queued', model: 'llama3.2', run_after: 0, attempts: 0, max_attempts: 3, ...over }) as Task

describe('waiting_for: why a queued task has not started', () => {
  test('no backend, none answering, none serving the model, or only a free slot missing', () => {
    expect(waitingReason(deps(), task(), 1000)).toBe('no backend serves llama3.2: none is configured (add one under backends:)')
    expect(waitingReason(deps(backend('a', false), backend('b', false)), task(), 1000)).toBe(
      'no backend serves llama3.2 yet: none answers (a at http://a:11434, b at http://b:11434); it runs when one does',
    )
    expect(waitingReason(deps(backend('a', true, ['qwen'])), task(), 1000)).toBe('no backend serves llama3.2 yet (up: a)')
    expect(waitingReason(deps(backend('a', true, ['qwen']), backend('b', true)), task(), 1000)).toBe('waiting for a free slot on b')
  })

  test('a retry that is not due yet comes first; finished or running tasks wait for nothing', () => {
    const retry = task({ run_after: Date.parse('2030-01-01T00:00:00Z'), attempts: 1 })
    expect(waitingReason(deps(backend('a', true)), retry, 0)).toBe('waiting for a retry at 2030-01-01T00:00:00.000Z (attempt 2 of 3)')
    for (const state of ['running', 'done', 'failed', 'cancelled'] as const) {
      expect(waitingReason(deps(backend('a', false)), task({ state }), 0)).toBeUndefined()
    }
  })
})
