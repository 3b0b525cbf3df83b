/**
 * OpenAI request bodies (valibot) to orch's canonical, Ollama-shaped requests, and canonical answers back
 * to OpenAI's objects: messages (text parts, data-URL images, tool calls), sampling parameters with their
 * Ollama names, response_format, usage from the eval counts, finish reasons.
 */
import * as v from 'valibot'
import type { ChatChunk, ChatMessage, ChatRequest, GenerateRequest, GenerationStats, ModelOptions } from '../../backends/types.ts'
import { httpError, parseJsonBounded } from '../http.ts'
import { defined, object } from './compat.ts'

type Json = Record<string, any>

const model = v.pipe(v.string('a model name is required'), v.nonEmpty('a model name is required'))
const stop = v.optional(v.nullable(v.union([v.string(), v.array(v.string())], 'expected a string or an array of strings')))
const num = v.optional(v.nullable(v.number()))

/** Parameters /v1/chat/completions and /v1/completions share. */
const sampling = {
  model,
  temperature: num,
  top_p: num,
  max_tokens: v.optional(v.nullable(v.pipe(v.number(), v.integer()))),
  stop,
  seed: v.optional(v.nullable(v.pipe(v.number(), v.integer()))),
  frequency_penalty: num,
  presence_penalty: num,
  n: v.optional(v.nullable(v.literal(1, 'only n: 1 is supported'))),
  stream: v.optional(v.nullable(v.boolean()), false),
  stream_options: v.optional(v.nullable(object({ include_usage: v.optional(v.nullable(v.boolean())) }))),
}

const Part = object({
  type: v.picklist(['text', 'image_url', 'input_text'], 'expected a text or image_url part'),
  text: v.optional(v.string()),
  image_url: v.optional(v.union([v.string(), object({ url: v.string() })])),
})

const Message = object({
  role: v.picklist(['system', 'developer', 'user', 'assistant', 'tool'], 'expected system, developer, user, assistant or tool'),
  content: v.optional(v.nullable(v.union([v.string(), v.array(Part)], 'expected a string or an array of content parts'))),
  tool_calls: v.optional(
    v.nullable(v.array(object({ id: v.optional(v.string()), function: object({ name: v.string(), arguments: v.string() }) }))),
  ),
  tool_call_id: v.optional(v.string()),
})

export const ChatCompletionBody = object({
  ...sampling,
  messages: v.array(Message),
  max_completion_tokens: v.optional(v.nullable(v.pipe(v.number(), v.integer()))),
  response_format: v.optional(
    v.nullable(
      object({
        type: v.picklist(['text', 'json_object', 'json_schema'], 'expected text, json_object or json_schema'),
        json_schema: v.optional(object({ schema: v.optional(v.record(v.string(), v.unknown())) })),
      }),
    ),
  ),
  tools: v.optional(v.nullable(v.array(v.unknown()))),
})

export const CompletionBody = object({
  ...sampling,
  prompt: v.union([v.string(), v.pipe(v.array(v.string()), v.length(1, 'only one prompt per request is supported'))], 'expected a string'),
  suffix: v.optional(v.nullable(v.string())),
})

export const EmbeddingsBody = object({
  model,
  input: v.union(
    [v.string(), v.pipe(v.array(v.string()), v.minLength(1, 'expected at least one input'))],
    'expected a string or an array of strings (token arrays are not supported)',
  ),
  encoding_format: v.optional(v.nullable(v.picklist(['float', 'base64'], 'expected float or base64'))),
  dimensions: v.optional(
    v.nullable(
      v.pipe(
        v.number('expected a positive integer'),
        v.integer('expected a positive integer'),
        v.minValue(1, 'expected a positive integer'),
      ),
    ),
  ),
})

export type ChatCompletionInput = v.InferOutput<typeof ChatCompletionBody>
export type CompletionInput = v.InferOutput<typeof CompletionBody>

function options(body: ChatCompletionInput | CompletionInput, maxTokens: number | null | undefined): ModelOptions | undefined {
  const out: ModelOptions = defined({
    temperature: body.temperature ?? undefined,
    top_p: body.top_p ?? undefined,
    seed: body.seed ?? undefined,
    frequency_penalty: body.frequency_penalty ?? undefined,
    presence_penalty: body.presence_penalty ?? undefined,
    num_predict: maxTokens ?? undefined,
    stop: typeof body.stop === 'string' ? [body.stop] : (body.stop ?? undefined),
  })
  return Object.keys(out).length > 0 ? out : undefined
}

/** `maxJsonDepth` bounds the JSON inside strings (tool call arguments) as server.max_json_depth bounds the body. */
export function chatRequest(body: ChatCompletionInput, maxJsonDepth: number): ChatRequest {
  const toolNames = new Map<string, string>()
  const messages = body.messages.map((m, i): ChatMessage => {
    const out: ChatMessage = { role: m.role === 'developer' ? 'system' : m.role, content: '' }
    const images: string[] = []
    if (typeof m.content === 'string') out.content = m.content
    else if (m.content) out.content = textOf(m.content, images, i)
    if (images.length > 0) out.images = images
    if (m.tool_calls?.length) {
      out.tool_calls = m.tool_calls.map((t, j) => {
        if (t.id) toolNames.set(t.id, t.function.name)
        return { function: { name: t.function.name, arguments: parseArguments(t.function.arguments, i, j, maxJsonDepth) } }
      })
    }
    if (m.role === 'tool' && m.tool_call_id) {
      const name = toolNames.get(m.tool_call_id)
      if (name) out.tool_name = name
    }
    return out
  })
  const f = body.response_format
  const format: ChatRequest['format'] =
    f?.type === 'json_object' ? 'json' : f?.type === 'json_schema' ? (f.json_schema?.schema ?? 'json') : undefined
  return defined({
    model: body.model,
    messages,
    options: options(body, body.max_completion_tokens ?? body.max_tokens),
    format,
    tools: body.tools?.length ? body.tools : undefined,
  })
}

export function generateRequest(body: CompletionInput): GenerateRequest {
  return defined({
    model: body.model,
    prompt: typeof body.prompt === 'string' ? body.prompt : (body.prompt[0] ?? ''),
    suffix: body.suffix ?? undefined,
    options: options(body, body.max_tokens),
  })
}

function textOf(parts: v.InferOutput<typeof Part>[], images: string[], i: number): string {
  const texts: string[] = []
  for (const [j, p] of parts.entries()) {
    if (p.type !== 'image_url') {
      texts.push(p.text ?? '')
      continue
    }
    const url = typeof p.image_url === 'string' ? p.image_url : (p.image_url?.url ?? '')
    const comma = url.indexOf(',')
    if (!url.startsWith('data:') || comma < 0) {
      const field = `messages.${i}.content.${j}.image_url`
      throw httpError(400, `${field}: only data: URLs (base64) are supported`, 'E_VALIDATION', { field })
    }
    images.push(url.slice(comma + 1))
  }
  return texts.join('\n')
}

function parseArguments(text: string, i: number, j: number, maxDepth: number): unknown {
  if (text === '') return {}
  const field = `messages.${i}.tool_calls.${j}.function.arguments`
  try {
    return parseJsonBounded(text, maxDepth, field, field)
  } catch (error) {
    if ((error as { code?: string }).code === 'E_JSON_TOO_DEEP') throw error
    throw httpError(400, `${field}: expected a JSON object encoded as a string`, 'E_VALIDATION', { field })
  }
}

/**
 * Vectors of `dimensions` length, as OpenAI's text-embedding-3 models give them: a longer vector (a backend
 * that ignores `dimensions`, such as an Ollama before it learned it) is cut and re-normalised to unit length;
 * a shorter one means the model has fewer dimensions than asked, a 400.
 */
export function fitDimensions(vectors: number[][], dimensions: number, model: string): number[][] {
  return vectors.map((vector) => {
    if (vector.length === dimensions) return vector
    if (vector.length < dimensions) {
      throw httpError(400, `dimensions: ${model} has ${vector.length} dimensions, fewer than the ${dimensions} asked for`, 'E_VALIDATION', {
        field: 'dimensions',
      })
    }
    const cut = vector.slice(0, dimensions)
    const norm = Math.sqrt(cut.reduce((sum, x) => sum + x * x, 0))
    return norm > 0 ? cut.map((x) => x / norm) : cut
  })
}

export const newId = (prefix: string) => `${prefix}-${crypto.randomUUID().replaceAll('-', '').slice(0, 24)}`
export const nowSeconds = () => Math.floor(Date.now() / 1000)

export function usage(stats: GenerationStats): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  const prompt = stats.prompt_eval_count ?? 0
  const completion = stats.eval_count ?? 0
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion }
}

export function finishReason(stats: GenerationStats, toolCalls: boolean): string {
  if (toolCalls) return 'tool_calls'
  return stats.done_reason === 'length' ? 'length' : 'stop'
}

/** Ollama's tool calls (arguments as an object) to OpenAI's (arguments as a JSON string, an id each). */
export function toolCalls(calls: unknown[] | undefined, streamed = false): Json[] | undefined {
  if (!calls?.length) return undefined
  return (calls as Json[]).map((t, index) => ({
    ...(streamed ? { index } : {}),
    id: typeof t.id === 'string' ? t.id : newId('call'),
    type: 'function',
    function: {
      name: t.function?.name,
      arguments: typeof t.function?.arguments === 'string' ? t.function.arguments : JSON.stringify(t.function?.arguments ?? {}),
    },
  }))
}

export function chatCompletion(answer: ChatChunk, model: string): Json {
  const calls = toolCalls(answer.message.tool_calls)
  const message: Json = { role: 'assistant', content: answer.message.content }
  if (answer.message.thinking) message.reasoning = answer.message.thinking
  if (calls) message.tool_calls = calls
  return {
    id: newId('chatcmpl'),
    object: 'chat.completion',
    created: nowSeconds(),
    model,
    system_fingerprint: 'fp_orch',
    choices: [{ index: 0, message, finish_reason: finishReason(answer, calls !== undefined), logprobs: null }],
    usage: usage(answer),
  }
}
