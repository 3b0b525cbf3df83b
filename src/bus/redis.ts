/**
 * The cluster's event bus (event_bus_type: redis): one Redis stream, `<prefix>:events`, that every orch
 * serve and orch worker of the cluster writes to and reads from. Event ids come from one counter
 * (`<prefix>:events:seq`), so they are whole numbers in one order for the whole cluster: an SSE client that
 * reconnects to another instance with its Last-Event-ID gets exactly the events it missed.
 *
 * The task queue's scripts append a task's event in the same script as the change itself, so no change is
 * ever without its event. Other events (workflows, workers, scaling) are appended by `publish`. Each
 * instance reads the stream on a connection of its own (a blocking read), keeps the last `capacity` events
 * for replay, and hands every event to its subscribers in stream order, its own included: an event is
 * delivered here only once it is in Redis.
 *
 * Redis down: `publish` drops the event (with one warning per outage); the reader retries, and on its
 * return goes on from the last id it read. Events the stream trimmed meanwhile (it keeps about `STREAM_MAX`)
 * are reported to SSE clients as a reset.
 */
import type { Redis } from 'ioredis'
import { logger, outageWarning } from '../core/log.ts'
import { type EventBus, type EventType, type Listener, LocalBus, type OrchEvent } from './local.ts'

/** Events the stream keeps (approximately: trimmed with MAXLEN ~). */
export const STREAM_MAX = 10_000
export const streamKey = (prefix: string) => `${prefix}:events`

/** Lua: append one event. KEYS[1]: the prefix with its colon. ARGV: at, type, data JSON. Returns its id. */
export const PUBLISH_LUA = `
local seq = redis.call('INCR', KEYS[1] .. 'events:seq')
redis.call('XADD', KEYS[1] .. 'events', 'MAXLEN', '~', ${STREAM_MAX}, seq .. '-0', 'type', ARGV[2], 'data', ARGV[3], 'at', ARGV[1])
return seq
`

export interface RedisBusOptions {
  /** Commands (publish, the first read). */
  client: Redis
  /** A connection for the blocking read alone (no command timeout); closed by `stop`. */
  reader: Redis
  prefix: string
  /** Events kept for replay; default STREAM_MAX. */
  capacity?: number
  /** How long one blocking read waits for new events before it asks again (ms). */
  blockMs?: number
}

type Entry = [id: string, fields: string[]]

export class RedisBus implements EventBus {
  private readonly local: LocalBus
  private readonly options: RedisBusOptions
  private readonly key: string
  private cursor = '0-0'
  private running = false
  private loop: Promise<void> | undefined
  private filled = false
  private readonly log = logger('store')
  private readonly outage = outageWarning(this.log)

  constructor(options: RedisBusOptions) {
    this.options = options
    this.key = streamKey(options.prefix)
    this.local = new LocalBus(options.capacity ?? STREAM_MAX, 1)
    options.client.defineCommand('orchPublish', { numberOfKeys: 1, lua: PUBLISH_LUA })
  }

  get lastId(): number {
    return this.local.lastId
  }

  /**
   * Read the events the stream still holds (for replay), then follow it. With Redis out of reach it
   * resolves at once and does both once Redis answers.
   */
  async start(): Promise<void> {
    if (this.running) return
    this.running = true
    await this.fill().catch((error: unknown) => this.outage.warn(`reading the event stream failed: ${(error as Error).message}; retrying`))
    this.loop = this.follow()
  }

  /**
   * At start, and again after every lost connection: take the events kept that were not read yet. A stream
   * whose newest id is below the last one read lost its data (a Redis restarted without persistence): it
   * is followed again from its start, and SSE clients are told they missed events.
   */
  private async fill(): Promise<void> {
    const kept = (await this.options.client.xrevrange(this.key, '+', '-', 'COUNT', this.options.capacity ?? STREAM_MAX)) as Entry[]
    const last = idNumber(this.cursor)
    const newest = kept[0] ? idNumber(kept[0][0]) : 0
    const lost = newest < last
    if (lost) this.cursor = '0-0'
    for (const entry of kept.reverse()) if (lost || idNumber(entry[0]) > last) this.take(entry)
    this.filled = true
  }

  async stop(): Promise<void> {
    this.running = false
    this.options.reader.disconnect()
    await this.loop
  }

  publish(type: EventType, data: Record<string, unknown>): void {
    const call = (this.options.client as unknown as { orchPublish(...args: string[]): Promise<number> }).orchPublish(
      `${this.options.prefix}:`,
      String(Date.now()),
      type,
      JSON.stringify(data),
    )
    call.then(
      () => {
        this.outage.ok()
      },
      (error: unknown) => this.outage.warn(`an event (${type}) was not published: ${(error as Error).message}`),
    )
  }

  subscribe(listener: Listener): () => void {
    return this.local.subscribe(listener)
  }

  /**
   * An id above the last one read here is another instance's, which read the stream further: this one is
   * behind, not missing anything; the events after it come live (the SSE route skips ids it already sent).
   */
  since(id: number): OrchEvent[] | undefined {
    return id > this.local.lastId ? [] : this.local.since(id)
  }

  private async follow(): Promise<void> {
    const { reader, blockMs = 2000 } = this.options
    while (this.running) {
      try {
        if (!this.filled) await this.fill()
        const reply = (await reader.xread('COUNT', 1000, 'BLOCK', blockMs, 'STREAMS', this.key, this.cursor)) as Array<
          [string, Entry[]]
        > | null
        this.outage.ok()
        for (const [, entries] of reply ?? []) for (const entry of entries) this.take(entry)
      } catch (error) {
        if (!this.running) break
        this.filled = false
        this.outage.warn(`reading the event stream failed: ${(error as Error).message}; retrying`)
        await Bun.sleep(500)
      }
    }
  }

  private take([id, fields]: Entry): void {
    this.cursor = id
    const values: Record<string, string> = {}
    for (let i = 0; i + 1 < fields.length; i += 2) values[fields[i] as string] = fields[i + 1] as string
    let data: Record<string, unknown>
    try {
      data = JSON.parse(values.data ?? '{}') as Record<string, unknown>
    } catch {
      return
    }
    this.local.deliver({ id: idNumber(id), type: (values.type ?? 'task') as EventType, at: Number(values.at), data })
  }
}

/** The event id of a stream entry id `<seq>-0`. */
function idNumber(id: string): number {
  return Number.parseInt(id, 10)
}
