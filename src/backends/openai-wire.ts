/**
 * Conversions between orch's canonical (Ollama-shaped) requests and chunks and the OpenAI wire format as
 * llama.cpp's server and vLLM speak it: request bodies, the SSE event stream, deltas to chunks.
 */
import { StreamFailure } from './timeouts.ts'
import type { ChatChunk, ChatMessage, ChatRequest, GenerateChunk, GenerateRequest, GenerationStats, ModelOptions } from './types.ts'

type Json = Record<string, any>

/** Ollama option names to OpenAI's; `num_predict` < 0 means "no limit" to Ollama, so it is left out. */
export function samplingOptions(options: ModelOptions | undefined): Json {
  if (!options) return {}
  const out: Json = {}
  for (const key of ['temperature', 'top_p', 'top_k', 'seed', 'stop', 'frequency_penalty', 'presence_penalty', 'min_p'] as const) {
    if (options[key] !== undefined) out[key] = options[key]
  }
  if (typeof options.num_predict === 'number' && options.num_predict >= 0) out.max_tokens = options.num_predict
  return out
}

function responseFormat(format: ChatRequest['format']): Json {
  if (format === undefined) return {}
  if (format === 'json') return { response_format: { type: 'json_object' } }
  return { response_format: { type: 'json_schema', json_schema: { name: 'response', schema: format } } }
}

function toOpenAIMessage(m: ChatMessage): Json {
  const out: Json = { role: m.role, content: m.content }
  if (m.images?.length) {
    out.content = [
      { type: 'text', text: m.content },
      ...m.images.map((b64) => ({ type: 'image_url', image_url: { url: b64.startsWith('data:') ? b64 : `data:image/png;base64,${b64}` } })),
    ]
  }
  if (m.tool_calls?.length) {
    out.tool_calls = (m.tool_calls as Json[]).map((t, i) => ({
      id: t.id ?? `call_${i}`,
      type: 'function',
      function: { name: t.function?.name, arguments: JSON.stringify(t.function?.arguments ?? {}) },
    }))
  }
  if (typeof m.tool_call_id === 'string') out.tool_call_id = m.tool_call_id
  return out
}

const streamed = { stream: true, stream_options: { include_usage: true } }

export function chatBody(r: ChatRequest): Json {
  return {
    model: r.model,
    messages: r.messages.map(toOpenAIMessage),
    ...streamed,
    ...samplingOptions(r.options),
    ...responseFormat(r.format),
    ...(r.tools ? { tools: r.tools } : {}),
  }
}

/** /v1/completions applies no template: a system text goes in front of the prompt. */
export function completionBody(r: GenerateRequest): Json {
  return {
    model: r.model,
    prompt: r.system ? `${r.system}\n\n${r.prompt}` : r.prompt,
    ...(r.suffix ? { suffix: r.suffix } : {}),
    ...streamed,
    ...samplingOptions(r.options),
    ...responseFormat(r.format),
  }
}

/** The JSON payloads of an SSE stream's `data:` lines, until `data: [DONE]`. */
export async function* sseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<Json> {
  const decoder = new TextDecoder()
  let buffer = ''
  const parse = (line: string): Json | 'done' | undefined => {
    if (!line.startsWith('data:')) return undefined
    const data = line.slice(5).trim()
    if (data === '[DONE]') return 'done'
    if (data === '') return undefined
    const event = JSON.parse(data) as Json
    if (event.error !== undefined || event.object === 'error') {
      throw new StreamFailure(String(event.error?.message ?? event.error ?? event.message ?? 'error event'))
    }
    return event
  }
  for await (const bytes of body) {
    buffer += decoder.decode(bytes, { stream: true })
    let newline = buffer.indexOf('\n')
    while (newline >= 0) {
      const event = parse(buffer.slice(0, newline).replace(/\r$/, ''))
      buffer = buffer.slice(newline + 1)
      if (event === 'done') return
      if (event) yield event
      newline = buffer.indexOf('\n')
    }
  }
  const event = parse((buffer + decoder.decode()).trim())
  if (event && event !== 'done') yield event
}

const createdAt = (e: Json) => (typeof e.created === 'number' ? new Date(e.created * 1000) : new Date()).toISOString()

/** Usage (OpenAI) and timings (llama.cpp) to Ollama's counts and nanosecond durations. */
function finalStats(finish: string, usage: Json | undefined, timings: Json | undefined): GenerationStats {
  const stats: GenerationStats = { done_reason: finish === 'tool_calls' || finish === 'function_call' ? 'stop' : finish }
  if (typeof usage?.prompt_tokens === 'number') stats.prompt_eval_count = usage.prompt_tokens
  if (typeof usage?.completion_tokens === 'number') stats.eval_count = usage.completion_tokens
  if (typeof timings?.prompt_ms === 'number') stats.prompt_eval_duration = Math.round(timings.prompt_ms * 1e6)
  if (typeof timings?.predicted_ms === 'number') stats.eval_duration = Math.round(timings.predicted_ms * 1e6)
  return stats
}

/** Stream events in, canonical chunks out: one per content delta, then one `done: true` with the stats. */
async function* toChunks<T>(
  events: AsyncIterable<Json>,
  piece: (choice: Json, tools: Map<number, Json>) => Partial<T> | undefined,
  last: (tools: Map<number, Json>) => Partial<T>,
  model: string,
): AsyncGenerator<T> {
  let finish: string | undefined
  let usage: Json | undefined
  let timings: Json | undefined
  let stamp = new Date().toISOString()
  const tools = new Map<number, Json>()
  for await (const e of events) {
    if (e.usage) usage = e.usage
    if (e.timings) timings = e.timings
    stamp = createdAt(e)
    const choice = e.choices?.[0]
    if (!choice) continue
    if (choice.finish_reason) finish = choice.finish_reason
    const part = piece(choice, tools)
    if (part) yield { model: e.model ?? model, created_at: stamp, ...part, done: false } as T
  }
  if (finish === undefined) throw new StreamFailure('the stream ended before a finish_reason')
  yield { model, created_at: stamp, ...last(tools), done: true, ...finalStats(finish, usage, timings) } as T
}

export function chatChunks(events: AsyncIterable<Json>, model: string): AsyncGenerator<ChatChunk> {
  return toChunks<ChatChunk>(
    events,
    (choice, tools) => {
      const d: Json = choice.delta ?? choice.message ?? {}
      for (const t of (d.tool_calls as Json[] | undefined) ?? []) {
        const index = typeof t.index === 'number' ? t.index : tools.size
        const seen = tools.get(index) ?? { name: '', arguments: '' }
        tools.set(index, { name: seen.name + (t.function?.name ?? ''), arguments: seen.arguments + (t.function?.arguments ?? '') })
      }
      const thinking = d.reasoning_content ?? d.reasoning
      if (!d.content && !thinking) return undefined
      return { message: { role: 'assistant', content: d.content ?? '', ...(thinking ? { thinking } : {}) } }
    },
    (tools) => {
      const calls = [...tools.entries()]
        .sort(([a], [b]) => a - b)
        .map(([, t]) => ({ function: { name: t.name, arguments: parseArgs(t.arguments) } }))
      return { message: { role: 'assistant', content: '', ...(calls.length ? { tool_calls: calls } : {}) } }
    },
    model,
  )
}

export function generateChunks(events: AsyncIterable<Json>, model: string): AsyncGenerator<GenerateChunk> {
  return toChunks<GenerateChunk>(
    events,
    (choice) => (choice.text ? { response: choice.text } : undefined),
    () => ({ response: '' }),
    model,
  )
}

function parseArgs(text: string): unknown {
  try {
    return text === '' ? {} : JSON.parse(text)
  } catch {
    return text
  }
}
