/**
 * GET /events read with fetch rather than EventSource, which cannot send an Authorization header. Frames
 * are split on blank lines as the SSE format says; a dropped stream reconnects after `retry` with
 * Last-Event-ID, so no event is missed while the server still remembers it.
 */
import { ApiError, authHeaders } from './api.ts'

export interface StreamEvent {
  type: string
  data: Record<string, unknown>
}

export type LiveState = 'connecting' | 'live' | 'reconnecting' | 'stopped'

export interface EventOptions {
  types: string[]
  signal: AbortSignal
  onEvent(event: StreamEvent): void
  onState(state: LiveState, detail?: string): void
}

export async function followEvents(options: EventOptions): Promise<void> {
  const { signal } = options
  let lastId: string | undefined
  let retryMs = 2000
  options.onState('connecting')
  while (!signal.aborted) {
    try {
      const headers = authHeaders({ accept: 'text/event-stream' })
      if (lastId !== undefined) headers.set('last-event-id', lastId)
      const response = await fetch(`/events?types=${options.types.join(',')}`, { headers, signal, cache: 'no-store', credentials: 'omit' })
      if (!response.ok || !response.body) throw new ApiError(response.status, `the event stream answered ${response.status}`)
      options.onState('live')
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
      let buffer = ''
      for (;;) {
        const { done, value } = await reader.read()
        if (done) break
        buffer += value.replace(/\r\n?/g, '\n')
        let end = buffer.indexOf('\n\n')
        while (end >= 0) {
          const frame = parseFrame(buffer.slice(0, end))
          buffer = buffer.slice(end + 2)
          if (frame.id !== undefined) lastId = frame.id
          if (frame.retry !== undefined) retryMs = frame.retry
          if (frame.event !== undefined) options.onEvent(frame.event)
          end = buffer.indexOf('\n\n')
        }
      }
    } catch (error) {
      if (signal.aborted) break
      // Without the right token the stream would only be refused again; the page's own fetches ask for it.
      if (error instanceof ApiError && error.unauthorized) {
        options.onState('stopped', 'needs the access token')
        return
      }
    }
    if (signal.aborted) break
    options.onState('reconnecting')
    await new Promise((resolve) => setTimeout(resolve, retryMs))
  }
  options.onState('stopped')
}

interface Frame {
  id?: string
  retry?: number
  event?: StreamEvent
}

export function parseFrame(text: string): Frame {
  const frame: Frame = {}
  let type = 'message'
  const data: string[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith(':')) continue
    const colon = line.indexOf(':')
    const field = colon < 0 ? line : line.slice(0, colon)
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
    if (field === 'id') frame.id = value
    else if (field === 'event') type = value
    else if (field === 'data') data.push(value)
    else if (field === 'retry' && /^\d+$/.test(value)) frame.retry = Number(value)
  }
  if (data.length > 0) {
    try {
      frame.event = { type, data: JSON.parse(data.join('\n')) as Record<string, unknown> }
    } catch {
      // Not JSON: not one of orch's events.
    }
  }
  return frame
}
