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

/**
 * What the rest of orch publishes to and reads from: this in-process bus, or the cluster's stream on Redis
 * (./redis.ts), which delivers every instance's events to every instance, in one order, with one id space.
 */
export interface EventBus {
  /** The id of the newest event delivered here (0 or less: none yet). */
  readonly lastId: number
  publish(type: EventType, data: Record<string, unknown>): void
  subscribe(listener: Listener): () => void
  /** Events after `id`, oldest first; undefined when `id` is older than what is kept (the client missed some). */
  since(id: number): OrchEvent[] | undefined
}

export class LocalBus implements EventBus {
  /** The last `capacity` events, oldest at `head`; their ids are consecutive. */
  private readonly ring: Array<OrchEvent | undefined>
  private head = 0
  private size = 0
  private readonly listeners = new Set<Listener>()
  private nextId: number

  /** `firstId` lets ids keep increasing across restarts (e.g. Date.now()), so an old Last-Event-ID is never reused. */
  constructor(
    private readonly capacity = 10_000,
    firstId = 1,
  ) {
    if (!(capacity >= 1)) throw new RangeError(`the event buffer needs room for at least 1 event, got ${capacity}`)
    this.ring = new Array(capacity)
    this.nextId = firstId
  }

  get lastId(): number {
    return this.nextId - 1
  }

  publish(type: EventType, data: Record<string, unknown>): OrchEvent {
    const event: OrchEvent = { id: this.nextId, type, at: Date.now(), data }
    this.deliver(event)
    return event
  }

  /**
   * Keep and hand out an event whose id was given elsewhere (the cluster's stream). Ids must follow on: one
   * that skips ahead (events trimmed before they were read) or goes back (the stream lost its data) empties
   * the buffer, so a client resuming from before it is told it missed events rather than handed a stream
   * with a hole in it.
   */
  deliver(event: OrchEvent): void {
    if (event.id !== this.nextId) {
      this.head = 0
      this.size = 0
      this.ring.fill(undefined)
    }
    this.nextId = event.id + 1
    // A full buffer overwrites its oldest event: O(1) per event, where shifting an array moves them all.
    if (this.size < this.capacity) {
      this.ring[(this.head + this.size) % this.capacity] = event
      this.size++
    } else {
      this.ring[this.head] = event
      this.head = (this.head + 1) % this.capacity
    }
    for (const listener of this.listeners) {
      try {
        listener(event)
      } catch {
        // A failing subscriber must not break publishing for the others.
      }
    }
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Events after `id`, oldest first; undefined when `id` is older than the buffer (the client missed some). */
  since(id: number): OrchEvent[] | undefined {
    // An id this bus never gave (the cluster's stream started over): the client cannot resume from it.
    if (id > this.lastId) return undefined
    const oldest = this.size > 0 ? this.ring[this.head] : undefined
    if (oldest === undefined) return id <= this.lastId ? [] : undefined
    if (id < oldest.id - 1) return undefined
    const events: OrchEvent[] = []
    for (let i = Math.max(0, id + 1 - oldest.id); i < this.size; i++) events.push(this.ring[(this.head + i) % this.capacity] as OrchEvent)
    return events
  }
}
