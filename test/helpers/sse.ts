/** Reading a real `GET /events` stream frame by frame (Server-Sent Events: `id:`, `event:`, `data:` lines). */

export interface Frame {
  id: number
  event: string
  data: any
}

/** The frames of an SSE body, one at a time; comments and frames without data are skipped. */
export function sseFrames(body: ReadableStream<Uint8Array>): { next(): Promise<Frame>; frames: Frame[] } {
  const reader = body.getReader()
  const decoder = new TextDecoder()
  let buffer = ''
  const frames: Frame[] = []
  async function next(): Promise<Frame> {
    for (;;) {
      const end = buffer.indexOf('\n\n')
      if (end >= 0) {
        const text = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        const fields = Object.fromEntries(
          text
            .split('\n')
            .filter((l) => !l.startsWith(':') && l.includes(':'))
            .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]),
        )
        if (fields.data === undefined) continue
        const frame = { id: Number(fields.id), event: String(fields.event), data: JSON.parse(fields.data) }
        frames.push(frame)
        return frame
      }
      const { value, done } = await reader.read()
      if (done) throw new Error('the event stream ended')
      buffer += decoder.decode(value, { stream: true })
    }
  }
  return { next, frames }
}
