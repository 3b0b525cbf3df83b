/**
 * OpenAI's Responses API (`POST /v1/responses`) over the engine's chat: `input` (a string, or message
 * items with text parts) and `instructions` become chat messages; the answer is a `response` object with
 * one assistant message, or the Responses event stream (`event:` + `data:` pairs, each with its
 * `sequence_number`, ending with `response.completed` and no `[DONE]`). Nothing is stored: what needs a
 * stored response (previous_response_id, conversation, store: true, background) or tools is refused with
 * a 400 naming the parameter, never ignored.
 */
import * as v from 'valibot'
import type { ChatChunk, ChatMessage, ChatRequest, ModelOptions } from '../../backends/types.ts'
import { httpError, validate } from '../http.ts'
import { defined, object, type StreamFormat } from './compat.ts'

type Json = Record<string, any>

const num = v.optional(v.nullable(v.number()))

const Part = object({
  type: v.picklist(['input_text', 'output_text', 'refusal', 'input_image'], 'expected an input_text, output_text or input_image part'),
  text: v.optional(v.string()),
  refusal: v.optional(v.string()),
  image_url: v.optional(v.nullable(v.string())),
})

/** A message item: `type` may be left out (OpenAI's "easy" input message). */
const Item = object({
  type: v.optional(v.literal('message', 'only message items are supported (tool calls and their outputs need tools)')),
  role: v.picklist(['user', 'assistant', 'system', 'developer'], 'expected user, assistant, system or developer'),
  content: v.union([v.string(), v.array(Part)], 'expected a string or an array of content parts'),
})

const Format = object({
  type: v.picklist(['text', 'json_object', 'json_schema'], 'expected text, json_object or json_schema'),
  schema: v.optional(v.record(v.string(), v.unknown())),
})

export const ResponsesBody = object({
  model: v.pipe(v.string('a model name is required'), v.nonEmpty('a model name is required')),
  // Items are validated on their own (InputItems): a union would report only that neither shape fits.
  input: v.union(
    [v.string(), v.pipe(v.array(v.unknown()), v.minLength(1, 'expected at least one item'))],
    'expected a string or an array of items',
  ),
  instructions: v.optional(v.nullable(v.string())),
  temperature: num,
  top_p: num,
  max_output_tokens: v.optional(v.nullable(v.pipe(v.number(), v.integer('expected an integer'), v.minValue(1, 'expected at least 1')))),
  stream: v.optional(v.nullable(v.boolean()), false),
  text: v.optional(v.nullable(object({ format: v.optional(v.nullable(Format)) }))),
  metadata: v.optional(v.nullable(v.record(v.string(), v.string()))),
  truncation: v.optional(v.nullable(v.picklist(['auto', 'disabled'], 'expected auto or disabled'))),
})

const InputItems = object({ input: v.array(Item) })

export type ResponsesInput = v.InferOutput<typeof ResponsesBody>

const present = (value: unknown) => value !== undefined && value !== null
const nonEmpty = (value: unknown) => Array.isArray(value) && value.length > 0

/** Parameters refused when set: each with when it counts as set, and why it cannot be honoured. */
const UNSUPPORTED: [string, (value: unknown) => boolean, string][] = [
  ['tools', nonEmpty, 'tools are not supported on /v1/responses; /v1/chat/completions takes function tools'],
  ['tool_choice', (x) => present(x) && x !== 'auto' && x !== 'none', 'tool_choice needs tools, which are not supported here'],
  ['previous_response_id', present, 'responses are not stored; send the whole conversation in input'],
  ['conversation', present, 'conversations are not stored; send the whole conversation in input'],
  ['store', (x) => x === true, 'responses are not stored; leave store out or set it to false'],
  ['background', (x) => x === true, 'background responses are not supported; use stream: true for long answers'],
  ['prompt', present, 'stored prompt templates are not supported; send instructions and input'],
  ['include', nonEmpty, 'no extra output data is available to include'],
  ['reasoning', (x) => present(x) && Object.values(x as object).some(present), 'reasoning settings are not supported'],
  ['top_logprobs', (x) => typeof x === 'number' && x > 0, 'log probabilities are not supported'],
  ['context_management', nonEmpty, 'context management is not supported'],
]

/** A 400 (`unsupported_parameter`) for the first parameter this endpoint cannot honour. */
export function refuseUnsupported(body: Json): void {
  for (const [field, isSet, why] of UNSUPPORTED) {
    if (isSet(body[field])) throw httpError(400, `${field}: ${why}`, 'E_UNSUPPORTED', { field })
  }
}

/** The chat request: instructions as the system message first, then the input items in order. */
export function responsesRequest(body: ResponsesInput): ChatRequest {
  const messages: ChatMessage[] = []
  if (body.instructions) messages.push({ role: 'system', content: body.instructions })
  if (typeof body.input === 'string') messages.push({ role: 'user', content: body.input })
  else for (const [i, item] of validate(InputItems, { input: body.input }).input.entries()) messages.push(message(item, i))
  const options: ModelOptions = defined({
    temperature: body.temperature ?? undefined,
    top_p: body.top_p ?? undefined,
    num_predict: body.max_output_tokens ?? undefined,
  })
  const f = body.text?.format
  const format: ChatRequest['format'] = f?.type === 'json_object' ? 'json' : f?.type === 'json_schema' ? (f.schema ?? 'json') : undefined
  return defined({ model: body.model, messages, options: Object.keys(options).length > 0 ? options : undefined, format })
}

function message(item: v.InferOutput<typeof Item>, i: number): ChatMessage {
  const role = item.role === 'developer' ? 'system' : item.role
  if (typeof item.content === 'string') return { role, content: item.content }
  const texts: string[] = []
  const images: string[] = []
  for (const [j, part] of item.content.entries()) {
    if (part.type !== 'input_image') {
      texts.push(part.text ?? part.refusal ?? '')
      continue
    }
    const url = part.image_url ?? ''
    const comma = url.indexOf(',')
    if (!url.startsWith('data:') || comma < 0) {
      const field = `input.${i}.content.${j}.image_url`
      throw httpError(400, `${field}: only data: URLs (base64) are supported`, 'E_VALIDATION', { field })
    }
    images.push(url.slice(comma + 1))
  }
  return { role, content: texts.join('\n'), ...(images.length > 0 ? { images } : {}) }
}

const hexId = (prefix: string) => `${prefix}_${crypto.randomUUID().replaceAll('-', '')}`

/** What a response says before its answer: the echo of the request, `in_progress`, no output yet. */
export function responseShell(body: ResponsesInput): Json {
  return {
    id: hexId('resp'),
    object: 'response',
    created_at: Math.floor(Date.now() / 1000),
    status: 'in_progress',
    background: false,
    error: null,
    incomplete_details: null,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    metadata: body.metadata ?? {},
    model: body.model,
    output: [],
    parallel_tool_calls: true,
    previous_response_id: null,
    reasoning: null,
    store: false,
    temperature: body.temperature ?? null,
    text: { format: body.text?.format ?? { type: 'text' } },
    tool_choice: 'auto',
    tools: [],
    top_p: body.top_p ?? null,
    truncation: body.truncation ?? 'disabled',
    usage: null,
  }
}

const outputText = (text: string) => ({ type: 'output_text', text, annotations: [], logprobs: [] })

function outputMessage(id: string, status: string, text: string | undefined): Json {
  return { id, type: 'message', status, role: 'assistant', content: text === undefined ? [] : [outputText(text)] }
}

function usage(stats: ChatChunk): Json {
  const input = stats.prompt_eval_count ?? 0
  const output = stats.eval_count ?? 0
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: input + output,
  }
}

/** The finished response: `completed`, or `incomplete` when max_output_tokens cut the answer. */
export function finishedResponse(shell: Json, answer: ChatChunk, text: string, messageId = hexId('msg')): Json {
  const cut = answer.done_reason === 'length'
  const status = cut ? 'incomplete' : 'completed'
  return {
    ...shell,
    status,
    completed_at: Math.floor(Date.now() / 1000),
    incomplete_details: cut ? { reason: 'max_output_tokens' } : null,
    output: [outputMessage(messageId, status, text)],
    usage: usage(answer),
  }
}

/**
 * The Responses event stream: created, in_progress, the message item and its text part added, one
 * output_text.delta per piece of text, then text done, part done, item done and completed (or
 * incomplete). An error after the first event is an `error` event, which the official clients raise.
 */
export function responsesStream(shell: Json): StreamFormat<ChatChunk> {
  const itemId = hexId('msg')
  const at = { item_id: itemId, output_index: 0, content_index: 0 }
  let sequence = 0
  let text = ''
  let started = false
  const event = (type: string, data: Json) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data, sequence_number: sequence++ })}\n\n`
  return {
    contentType: 'text/event-stream',
    dialect: 'openai',
    item(chunk) {
      let out = ''
      if (!started) {
        started = true
        out += event('response.created', { response: shell })
        out += event('response.in_progress', { response: shell })
        out += event('response.output_item.added', { output_index: 0, item: outputMessage(itemId, 'in_progress', undefined) })
        out += event('response.content_part.added', { ...at, part: outputText('') })
      }
      const piece = chunk.message.content
      if (piece) {
        text += piece
        out += event('response.output_text.delta', { ...at, delta: piece, logprobs: [] })
      }
      if (chunk.done) {
        const done = finishedResponse(shell, chunk, text, itemId)
        out += event('response.output_text.done', { ...at, text, logprobs: [] })
        out += event('response.content_part.done', { ...at, part: outputText(text) })
        out += event('response.output_item.done', { output_index: 0, item: done.output[0] })
        out += event(done.status === 'completed' ? 'response.completed' : 'response.incomplete', { response: done })
      }
      return out
    },
    end: () => '',
    fail(body) {
      const error = (JSON.parse(body) as { error: Json }).error
      return event('error', { code: error.code ?? null, message: error.message, param: error.param ?? null })
    },
  }
}
