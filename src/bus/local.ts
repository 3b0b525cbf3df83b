/**
 * The in-process event bus (event_bus_type: local_memory): task, workflow, worker and scaling events with
 * increasing ids, kept in a ring buffer so an SSE client can resume after `Last-Event-ID`.
 */

export type EventType = 'task' | 'workflow' | 'worker' | 'scaling' | 'backend'

export interface OrchEvent {
  id: number
  type: EventType
  at: number
  data: Record<string, unknown>
}

export type Listener = (event: OrchEvent) => void

export class LocalBus {
  private readonly buffer: OrchEvent[] = []
  private readonly listeners = new Set<Listener>()
  private nextId: number

  /** `firstId` lets ids keep increasing across restarts (e.g. Date.now()), so an old Last-Event-ID is never reused. */
  constructor(
    private readonly capacity = 10_000,
    firstId = 1,
  ) {
    this.nextId = firstId
  }

  get lastId(): number {
    return this.nextId - 1
  }

  publish(type: EventType, data: Record<string, unknown>): OrchEvent {
    const event: OrchEvent = { id: this.nextId++, type, at: Date.now(), data }
    this.buffer.push(event)
    if (this.buffer.length > this.capacity) this.buffer.shift()
    for (const listener of this.listeners) {
      try {
        listener(event)
      } catch {
        // A failing subscriber must not break publishing for the others.
      }
    }
    return event
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Events after `id`, oldest first; undefined when `id` is older than the buffer (the client missed some). */
  since(id: number): OrchEvent[] | undefined {
    const oldest = this.buffer[0]
    if (oldest === undefined) return id <= this.lastId ? [] : undefined
    if (id < oldest.id - 1) return undefined
    return this.buffer.filter((e) => e.id > id)
  }
}
