/**
 * `GET /events`: the event bus as Server-Sent Events (docs/http-api.md#get-events-server-sent-events) — task, workflow, worker,
 * scaling and backend events, `id:` the bus id, `event:` the type, `data:` one line of JSON. A client that
 * reconnects with `Last-Event-ID` gets exactly the events it missed; one that fell further behind than the
 * bus remembers gets `event: reset` and goes on from now. Everything is written from inside synchronous bus
 * callbacks, so events leave in the order they were published.
 */
import type { EventBus, EventType, OrchEvent } from '../../bus/local.ts'
import { httpError, type Route, type RouteContext } from '../http.ts'

export const EVENT_TYPES: EventType[] = ['task', 'workflow', 'worker', 'scaling', 'backend']

export interface EventRouteOptions {
  /** A comment line this often keeps proxies and idle timeouts from closing a quiet stream (default 15 s). */
  heartbeatMs?: number
  /** Frames buffered for a client that does not read; past this it gets `reset` and is closed (default 10,000). */
  maxBuffered?: number
}

const HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
}

export function eventRoutes(options: EventRouteOptions = {}): Route[] {
  return [{ method: 'GET', path: '/events', long: true, handler: (ctx) => eventStream(ctx, options) }]
}

function eventStream(ctx: RouteContext, options: EventRouteOptions): Response {
  const types = parseTypes(ctx.url.searchParams.get('types'))
  const lastId = parseLastId(ctx.request.headers.get('last-event-id') ?? ctx.url.searchParams.get('last_event_id'))
  const { bus } = ctx.deps
  const { signal } = ctx.request
  const maxBuffered = options.maxBuffered ?? 10_000
  const encoder = new TextEncoder()
  let stop = () => {}
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      let open = true
      const send = (text: string) => {
        if (!open) return
        try {
          controller.enqueue(encoder.encode(text))
        } catch {
          stop()
        }
      }
      // Ids only go up on one stream: one at or below the last sent (a replay meeting the live events, an
      // instance of a cluster catching up on a Last-Event-ID it had not read yet) was sent already.
      let sentId = lastId ?? Number.NEGATIVE_INFINITY
      const write = (event: OrchEvent) => {
        if (event.id <= sentId) return
        sentId = event.id
        if (!types || types.has(event.type)) send(frame(event))
      }
      const live = (event: OrchEvent) => {
        write(event)
        if ((controller.desiredSize ?? 0) >= -maxBuffered) return
        send(resetFrame(bus, 'slow_consumer', `more than ${maxBuffered} events waited for this client to read them`))
        stop()
        controller.close()
      }
      send(`retry: 2000\n: orch events, last id ${bus.lastId}\n\n`)
      // Replay and subscription in one synchronous block: no event is published between them.
      if (lastId !== undefined) {
        const missed = bus.since(lastId)
        if (missed === undefined) send(resetFrame(bus, 'too_far_behind', `events after ${lastId} are no longer kept`))
        else for (const event of missed) write(event)
      }
      const unsubscribe = bus.subscribe(live)
      const heartbeat = setInterval(() => send(': ping\n\n'), options.heartbeatMs ?? 15_000)
      const onAbort = () => {
        stop()
        try {
          controller.close()
        } catch {
          // Already closed or errored: nothing left to end.
        }
      }
      stop = () => {
        open = false
        unsubscribe()
        clearInterval(heartbeat)
        signal.removeEventListener('abort', onAbort)
      }
      if (signal.aborted) onAbort()
      else signal.addEventListener('abort', onAbort, { once: true })
    },
    cancel() {
      stop()
    },
  })
  return new Response(body, { headers: HEADERS })
}

function frame(event: OrchEvent): string {
  return `id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify({ ...event.data, at: event.at })}\n\n`
}

/** The id is the newest one, so a client that reconnects after a reset resumes from here. */
function resetFrame(bus: EventBus, reason: string, message: string): string {
  return `id: ${bus.lastId}\nevent: reset\ndata: ${JSON.stringify({ reason, message, last_id: bus.lastId })}\n\n`
}

function parseTypes(text: string | null): Set<string> | undefined {
  if (text === null || text.trim() === '') return undefined
  const types = text.split(',').map((t) => t.trim())
  const unknown = types.find((t) => !EVENT_TYPES.includes(t as EventType))
  if (unknown !== undefined) {
    throw httpError(400, `types: unknown event type "${unknown}" (expected ${EVENT_TYPES.join(', ')})`, 'E_VALIDATION', { field: 'types' })
  }
  return new Set(types)
}

function parseLastId(text: string | null): number | undefined {
  if (text === null || text.trim() === '') return undefined
  const id = Number(text)
  if (!Number.isSafeInteger(id) || id < 0) {
    throw httpError(400, `Last-Event-ID: expected an event id (a whole number), got "${text.slice(0, 40)}"`, 'E_VALIDATION', {
      field: 'Last-Event-ID',
    })
  }
  return id
}
