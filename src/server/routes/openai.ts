/**
 * OpenAI's API, so OpenAI clients work by changing only their base URL to `<orch>/v1`: chat completions,
 * completions, responses (openai-responses.ts), embeddings, models. Requests become canonical
 * (Ollama-shaped) ones and go through the engine like every other call. `stream: true` answers Server-Sent
 * Events ending with `data: [DONE]`; an error after the first event is a `data: {"error": {...}}` event,
 * then the end. Errors speak OpenAI's vocabulary (openai-errors.ts).
 */
import type { ChatChunk, GenerateChunk, ModelInfo } from '../../backends/types.ts'
import { normalizeModel } from '../../scheduler/router.ts'
import { type AppDeps, httpError, json, type Route } from '../http.ts'
import { listModels, type StreamFormat } from './compat.ts'
import {
  ChatCompletionBody,
  type ChatCompletionInput,
  CompletionBody,
  type CompletionInput,
  chatCompletion,
  chatRequest,
  EmbeddingsBody,
  finishReason,
  fitDimensions,
  generateRequest,
  newId,
  nowSeconds,
  toolCalls,
  usage,
} from './openai-convert.ts'
import { finishedResponse, ResponsesBody, refuseUnsupported, responseShell, responsesRequest, responsesStream } from './openai-responses.ts'
import { proxyRoute } from './proxy.ts'

type Json = Record<string, any>

const event = (data: unknown) => `data: ${JSON.stringify(data)}\n\n`

/** SSE framing shared by both streams: `[DONE]` at the end, the OpenAI error body in-band on failure. */
const sse = {
  contentType: 'text/event-stream',
  dialect: 'openai',
  end: () => 'data: [DONE]\n\n',
  fail: (body: string) => `data: ${body}\n\n`,
} as const

/** chat.completion.chunk events: the role on the first, deltas, a last one with finish_reason, then usage if asked. */
export function chatStream(body: ChatCompletionInput): StreamFormat<ChatChunk> {
  const base = {
    id: newId('chatcmpl'),
    object: 'chat.completion.chunk',
    created: nowSeconds(),
    model: body.model,
    system_fingerprint: 'fp_orch',
  }
  const withUsage = body.stream_options?.include_usage === true
  const frame = (choice: Json) =>
    event({ ...base, choices: [{ index: 0, logprobs: null, ...choice }], ...(withUsage ? { usage: null } : {}) })
  let first = true
  let sawToolCalls = false
  return {
    ...sse,
    item(chunk) {
      const { content, thinking } = chunk.message
      const calls = toolCalls(chunk.message.tool_calls, true)
      let out = ''
      if (first || content || thinking || calls) {
        const delta: Json = first ? { role: 'assistant', content } : {}
        if (content) delta.content = content
        if (thinking) delta.reasoning = thinking
        if (calls) {
          delta.tool_calls = calls
          sawToolCalls = true
        }
        out = frame({ delta, finish_reason: null })
      }
      first = false
      if (chunk.done) {
        out += frame({ delta: {}, finish_reason: finishReason(chunk, sawToolCalls) })
        if (withUsage) out += event({ ...base, choices: [], usage: usage(chunk) })
      }
      return out
    },
  }
}

/** text_completion events: one per piece of text, the last with finish_reason, then usage if asked. */
export function completionStream(body: CompletionInput): StreamFormat<GenerateChunk> {
  const base = { id: newId('cmpl'), object: 'text_completion', created: nowSeconds(), model: body.model, system_fingerprint: 'fp_orch' }
  const withUsage = body.stream_options?.include_usage === true
  const frame = (text: string, finish: string | null) =>
    event({ ...base, choices: [{ index: 0, text, logprobs: null, finish_reason: finish }], ...(withUsage ? { usage: null } : {}) })
  return {
    ...sse,
    item(chunk) {
      let out = chunk.response ? frame(chunk.response, null) : ''
      if (chunk.done) {
        out += frame('', finishReason(chunk, false))
        if (withUsage) out += event({ ...base, choices: [], usage: usage(chunk) })
      }
      return out
    },
  }
}

export function openaiRoutes(deps: AppDeps): Route[] {
  return [
    proxyRoute({
      path: '/v1/chat/completions',
      kind: 'chat',
      body: ChatCompletionBody,
      toRequest: (body, ctx) => chatRequest(body, ctx.deps.config.server.max_json_depth),
      streamed: (body) => body.stream === true,
      format: chatStream,
      once: (answer, body) => chatCompletion(answer, body.model),
    }),
    proxyRoute({
      path: '/v1/completions',
      kind: 'generate',
      body: CompletionBody,
      toRequest: generateRequest,
      streamed: (body) => body.stream === true,
      format: completionStream,
      once: (answer, body) => ({
        id: newId('cmpl'),
        object: 'text_completion',
        created: nowSeconds(),
        model: body.model,
        system_fingerprint: 'fp_orch',
        choices: [{ index: 0, text: answer.response, logprobs: null, finish_reason: finishReason(answer, false) }],
        usage: usage(answer),
      }),
    }),
    proxyRoute({
      path: '/v1/responses',
      kind: 'chat',
      body: ResponsesBody,
      toRequest: (body) => {
        refuseUnsupported(body)
        return responsesRequest(body)
      },
      prepare: responseShell,
      streamed: (body) => body.stream === true,
      format: (_body, shell) => responsesStream(shell),
      once: (answer, _body, shell) => finishedResponse(shell, answer, answer.message.content),
    }),
    proxyRoute({
      path: '/v1/embeddings',
      kind: 'embed',
      body: EmbeddingsBody,
      toRequest: (body) => {
        const dimensions = body.dimensions ?? undefined
        return { model: body.model, input: body.input, ...(dimensions ? { dimensions } : {}) }
      },
      once: (answer, body) => {
        const dimensions = body.dimensions ?? undefined
        const vectors = dimensions ? fitDimensions(answer.embeddings, dimensions, body.model) : answer.embeddings
        const base64 = body.encoding_format === 'base64'
        const tokens = answer.prompt_eval_count ?? 0
        return {
          object: 'list',
          data: vectors.map((vector, index) => ({ object: 'embedding', index, embedding: base64 ? toBase64(vector) : vector })),
          model: body.model,
          usage: { prompt_tokens: tokens, total_tokens: tokens },
        }
      },
    }),
    {
      method: 'GET',
      path: '/v1/models',
      handler: async (ctx) => json({ object: 'list', data: (await listModels(ctx)).map((m) => modelEntry(m, deps.startedAt)) }),
    },
    {
      method: 'GET',
      path: '/v1/models/:model',
      handler: async (ctx) => {
        const wanted = normalizeModel(ctx.params.model ?? '')
        const found = (await listModels(ctx)).find((m) => normalizeModel(m.name) === wanted)
        if (!found) throw httpError(404, `The model '${ctx.params.model}' does not exist`, 'E_MODEL_NOT_FOUND')
        return json(modelEntry(found, deps.startedAt))
      },
    },
  ]
}

function modelEntry(m: ModelInfo, startedAt: number) {
  const modified = m.modified_at ? Date.parse(m.modified_at) : Number.NaN
  return { id: m.name, object: 'model', created: Math.floor((Number.isNaN(modified) ? startedAt : modified) / 1000), owned_by: 'orch' }
}

/** OpenAI's base64 embeddings: the vector as float32 bytes (little-endian on every platform Bun runs on). */
function toBase64(vector: number[]): string {
  return Buffer.from(new Float32Array(vector).buffer).toString('base64')
}
