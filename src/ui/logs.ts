/**
 * Logs: orch serve's own (when it runs in the background) or a pool worker's — the last lines
 * (GET /logs), and with Follow every line appended as it is written (the same endpoint as Server-Sent
 * Events), which Pause holds back until resumed. Lines go in as text, never as markup.
 */
import { ApiError, api, authHeaders } from './api.ts'
import { fill, h } from './dom.ts'
import { parseFrame } from './events.ts'
import type { Page, PageContext } from './router.ts'
import type { LogAnswer, LogSource } from './types.ts'

const DEFAULT_LINES = 200
const MAX_LINES = 2000
/** Lines kept on the page while following; the oldest go first. */
const KEEP_LINES = 5000

export const logsPage: Page = {
  path: '/logs',
  nav: 'Logs',
  title: () => 'Logs',
  render,
}

function render(ctx: PageContext): void {
  const { main, query, signal } = ctx
  const wanted = query.get('source') ?? ''
  const lineCount = clampLines(query.get('lines'))
  const problem = h('div', { class: 'problem' })
  const state = h('p', { class: 'meta', role: 'status', 'data-figure': 'log.state' }, 'loading…')
  const output = h('pre', { class: 'json log', tabindex: '0', 'aria-label': 'Log lines', 'data-figure': 'log.lines' })
  const sourceSelect = h('select', { id: 'log-source', name: 'source' })
  const linesInput = h('input', {
    id: 'log-lines',
    name: 'lines',
    type: 'number',
    min: '1',
    max: String(MAX_LINES),
    value: String(lineCount),
  })
  const followButton = h('button', { type: 'button', id: 'log-follow', 'aria-pressed': 'false', disabled: true }, 'Follow')
  const pauseButton = h('button', { type: 'button', id: 'log-pause', 'aria-pressed': 'false', disabled: true }, 'Pause')
  const form = h(
    'form',
    {
      class: 'filters',
      'aria-label': 'Which log',
      onsubmit: (event: Event) => {
        event.preventDefault()
        const q = new URLSearchParams({ source: sourceSelect.value, lines: String(clampLines(linesInput.value)) })
        ctx.navigate(`#/logs?${q}`)
      },
    },
    h('div', {}, h('label', { for: 'log-source' }, 'Log'), sourceSelect),
    h('div', {}, h('label', { for: 'log-lines' }, `Last lines (up to ${MAX_LINES})`), linesInput),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Show'), followButton, pauseButton),
  )
  fill(main, h('h1', { tabindex: '-1' }, 'Logs'), form, problem, state, output)

  let shown: string[] = []
  const held: string[] = []
  let following: AbortController | undefined
  let paused = false
  const source = () => sourceSelect.value

  const put = (lines: string[], replace = false) => {
    const atEnd = output.scrollHeight - output.scrollTop - output.clientHeight < 8
    if (replace) {
      shown = lines.slice(-KEEP_LINES)
      output.textContent = shown.length > 0 ? `${shown.join('\n')}\n` : ''
    } else if (lines.length > 0) {
      shown.push(...lines)
      if (shown.length > KEEP_LINES) {
        shown = shown.slice(-KEEP_LINES)
        output.textContent = `${shown.join('\n')}\n`
      } else output.append(document.createTextNode(`${lines.join('\n')}\n`))
    }
    if (atEnd || replace) output.scrollTop = output.scrollHeight
  }
  const say = (text: string) => {
    state.textContent = text
  }
  const describe = () => {
    const name = source()
    if (!following)
      return `${name}: the last ${shown.length} line${shown.length === 1 ? '' : 's'}. Follow shows new lines as they are written.`
    if (paused)
      return `${name}: following, paused — ${held.length} new line${held.length === 1 ? '' : 's'} held until Pause is pressed again.`
    return `${name}: following — new lines appear as they are written.`
  }

  const load = async () => {
    try {
      const answer = await api<LogAnswer>(`/logs?${new URLSearchParams({ source: source(), lines: String(lineCount) })}`)
      if (signal.aborted) return
      fill(problem)
      put(answer.lines, true)
      say(answer.exists ? describe() : `${source()}: no log file yet (a foreground orch serve logs to its terminal).`)
    } catch (error) {
      if (!signal.aborted) ctx.failed(error, problem)
    }
  }

  const stopFollowing = () => {
    following?.abort()
    following = undefined
    paused = false
    if (held.length > 0) put(held.splice(0))
    followButton.setAttribute('aria-pressed', 'false')
    pauseButton.setAttribute('aria-pressed', 'false')
    pauseButton.disabled = true
  }
  const startFollowing = () => {
    const stream = new AbortController()
    following = stream
    signal.addEventListener('abort', () => stream.abort(), { once: true })
    followButton.setAttribute('aria-pressed', 'true')
    pauseButton.disabled = false
    say(describe())
    void streamLog(source(), lineCount, stream.signal, (lines, first) => {
      if (first) {
        put(lines, true)
        return
      }
      if (paused) {
        held.push(...lines)
        say(describe())
      } else put(lines)
    }).then(
      () => {
        if (following === stream && !stream.signal.aborted) {
          stopFollowing()
          say(`${source()}: the stream ended; Follow starts it again.`)
        }
      },
      (error: unknown) => {
        if (stream.signal.aborted || signal.aborted) return
        stopFollowing()
        ctx.failed(error, problem)
        say(describe())
      },
    )
  }
  followButton.addEventListener('click', () => {
    if (following) stopFollowing()
    else startFollowing()
    say(describe())
  })
  pauseButton.addEventListener('click', () => {
    paused = !paused
    // A toggle keeps its name; aria-pressed (and the look) says whether it is on.
    pauseButton.setAttribute('aria-pressed', String(paused))
    if (!paused && held.length > 0) put(held.splice(0))
    say(describe())
  })
  signal.addEventListener('abort', () => following?.abort())

  void (async () => {
    try {
      const { sources } = await api<{ sources: LogSource[] }>('/logs/sources')
      if (signal.aborted) return
      if (sources.length === 0) {
        say('No log to show: this orch serve runs no pool and has no state directory of its own.')
        return
      }
      const pick = sources.some((s) => s.source === wanted) ? wanted : (sources[0] as LogSource).source
      fill(
        sourceSelect,
        ...sources.map((s) =>
          h(
            'option',
            { value: s.source, selected: s.source === pick },
            s.kind === 'serve' ? 'serve (orch serve in the background)' : `${s.source} (pool ${s.pool ?? '?'})`,
          ),
        ),
      )
      followButton.disabled = false
      await load()
    } catch (error) {
      if (!signal.aborted) ctx.failed(error, problem)
    }
  })()
}

function clampLines(raw: string | null): number {
  const n = Number(raw)
  if (raw === null || raw === '' || !Number.isInteger(n) || n < 1) return DEFAULT_LINES
  return Math.min(n, MAX_LINES)
}

/** GET /logs?follow=1 read with fetch (the token goes in a header); `first` marks the tail that opens it. */
async function streamLog(
  source: string,
  lines: number,
  signal: AbortSignal,
  onLines: (lines: string[], first: boolean) => void,
): Promise<void> {
  const q = new URLSearchParams({ source, lines: String(lines), follow: '1' })
  const response = await fetch(`/logs?${q}`, {
    headers: authHeaders({ accept: 'text/event-stream' }),
    signal,
    cache: 'no-store',
    credentials: 'omit',
  })
  if (!response.ok || !response.body) {
    const body = (await response.json().catch(() => null)) as { error?: { message?: string; code?: string } } | null
    throw new ApiError(response.status, body?.error?.message ?? `the log stream answered ${response.status}`, body?.error?.code)
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ''
  let first = true
  for (;;) {
    const { done, value } = await reader.read()
    if (done) return
    buffer += value.replace(/\r\n?/g, '\n')
    let end = buffer.indexOf('\n\n')
    while (end >= 0) {
      const frame = parseFrame(buffer.slice(0, end))
      buffer = buffer.slice(end + 2)
      const batch = frame.event?.type === 'lines' ? frame.event.data.lines : undefined
      if (Array.isArray(batch)) {
        onLines(
          batch.map((line) => String(line)),
          first,
        )
        first = false
      }
      end = buffer.indexOf('\n\n')
    }
  }
}
