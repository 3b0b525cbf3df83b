/**
 * Ollama's API, so Ollama clients work by changing only their host: chat, generate, embed (and the legacy
 * embeddings), tags, ps, the root probe; show, pull, create, copy, delete and version are in
 * ollama-manage.ts. Every model call goes through the engine (queue, limits, cache, batching, breaker).
 * Chat and generate stream NDJSON unless `stream: false`, as Ollama does; an error after the first line is
 * a last `{"error": "..."}` line.
 */
import * as v from 'valibot'
import type { ChatMessage, ChatRequest, GenerateRequest, LoadedModel, ModelInfo, ModelOptions } from '../../backends/types.ts'
import { type AppDeps, json, type Route } from '../http.ts'
import { defined, listLoaded, listModels, ndjson, object } from './compat.ts'
import { ollamaManageRoutes } from './ollama-manage.ts'
import { proxyRoute } from './proxy.ts'

const model = v.pipe(v.string('a model name is required'), v.nonEmpty('a model name is required'))
const options = v.optional(
  object({
    temperature: v.optional(v.number()),
    top_p: v.optional(v.number()),
    top_k: v.optional(v.number()),
    seed: v.optional(v.number()),
    num_ctx: v.optional(v.number()),
    num_predict: v.optional(v.number()),
    stop: v.optional(v.array(v.string())),
  }),
)
const format = v.optional(v.union([v.picklist(['json', '']), v.record(v.string(), v.unknown())], 'expected "json" or a JSON schema'))
const keepAlive = v.optional(v.union([v.string(), v.number()], 'expected a duration ("5m") or seconds'))
const images = v.optional(v.array(v.string('expected base64 image data')))

const Message = object({
  role: v.picklist(['system', 'user', 'assistant', 'tool'], 'expected system, user, assistant or tool'),
  content: v.optional(v.string(), ''),
  images,
  tool_calls: v.optional(v.array(v.unknown())),
})

export const ChatBody = object({
  model,
  messages: v.optional(v.array(Message), []),
  stream: v.optional(v.boolean(), true),
  options,
  format,
  tools: v.optional(v.array(v.unknown())),
  keep_alive: keepAlive,
  think: v.optional(v.boolean()),
})

export const GenerateBody = object({
  model,
  prompt: v.optional(v.string(), ''),
  system: v.optional(v.string()),
  suffix: v.optional(v.string()),
  images,
  raw: v.optional(v.boolean()),
  stream: v.optional(v.boolean(), true),
  options,
  format,
  keep_alive: keepAlive,
})

const EmbedBody = object({
  model,
  input: v.union([v.string(), v.array(v.string())], 'expected a string or an array of strings'),
  truncate: v.optional(v.boolean()),
  options,
  keep_alive: keepAlive,
})

const EmbeddingsBody = object({ model, prompt: v.optional(v.string(), ''), options, keep_alive: keepAlive })

const formatOf = (f: v.InferOutput<typeof format>) => (f === '' ? undefined : (f as ChatRequest['format']))

/** The canonical request: only the fields that were sent (as `defined` would leave them, without a copy more). */
export function chatRequest(body: v.InferOutput<typeof ChatBody>): ChatRequest {
  const request: ChatRequest = { model: body.model, messages: body.messages as ChatMessage[] }
  if (body.options !== undefined) request.options = body.options as ModelOptions
  const format = formatOf(body.format)
  if (format !== undefined) request.format = format
  if (body.tools !== undefined) request.tools = body.tools
  if (body.keep_alive !== undefined) request.keep_alive = body.keep_alive
  if (body.think !== undefined) request.think = body.think
  return request
}

export function generateRequest(body: v.InferOutput<typeof GenerateBody>): GenerateRequest {
  return defined({
    model: body.model,
    prompt: body.prompt,
    system: body.system,
    suffix: body.suffix,
    images: body.images,
    raw: body.raw,
    options: body.options as ModelOptions | undefined,
    format: formatOf(body.format),
    keep_alive: body.keep_alive,
  })
}

export function ollamaRoutes(deps: AppDeps): Route[] {
  return [
    // Clients probe the root to see whether "Ollama" is up (HEAD answers the same headers, no body).
    {
      method: 'GET',
      path: '/',
      public: true,
      handler: () => new Response('Ollama is running', { headers: { 'content-type': 'text/plain; charset=utf-8' } }),
    },
    proxyRoute({
      path: '/api/chat',
      kind: 'chat',
      body: ChatBody,
      toRequest: chatRequest,
      streamed: (body) => body.stream,
      format: () => ndjson,
      once: (answer) => answer,
    }),
    proxyRoute({
      path: '/api/generate',
      kind: 'generate',
      body: GenerateBody,
      toRequest: generateRequest,
      streamed: (body) => body.stream,
      format: () => ndjson,
      once: (answer) => answer,
    }),
    proxyRoute({
      path: '/api/embed',
      kind: 'embed',
      body: EmbedBody,
      toRequest: (body) =>
        defined({
          model: body.model,
          input: body.input,
          truncate: body.truncate,
          options: body.options as ModelOptions | undefined,
          keep_alive: body.keep_alive,
        }),
      once: (answer) => answer,
    }),
    proxyRoute({
      path: '/api/embeddings',
      kind: 'embed',
      body: EmbeddingsBody,
      // Ollama answers an empty prompt with an empty vector, without running the model.
      shortcut: (body) => (body.prompt === '' ? { embedding: [] } : undefined),
      toRequest: (body) =>
        defined({
          model: body.model,
          input: body.prompt,
          options: body.options as ModelOptions | undefined,
          keep_alive: body.keep_alive,
        }),
      once: (answer) => ({ embedding: answer.embeddings[0] ?? [] }),
    }),
    {
      method: 'GET',
      path: '/api/tags',
      handler: async (ctx) => json({ models: (await listModels(ctx)).map((m) => tagEntry(m, deps.startedAt)) }),
    },
    {
      method: 'GET',
      path: '/api/ps',
      handler: async (ctx) => json({ models: (await listLoaded(ctx)).map((m) => psEntry(m, deps.startedAt)) }),
    },
    ...ollamaManageRoutes(deps),
  ]
}

/** Ollama's list entry; fields a non-Ollama backend does not report get Ollama's empty values. */
function tagEntry(m: ModelInfo, startedAt: number) {
  return {
    name: m.name,
    model: m.model ?? m.name,
    modified_at: m.modified_at ?? new Date(startedAt).toISOString(),
    size: m.size ?? 0,
    digest: m.digest ?? '',
    details: m.details ?? { parent_model: '', format: '', family: '', families: null, parameter_size: '', quantization_level: '' },
  }
}

function psEntry(m: LoadedModel, startedAt: number) {
  const { modified_at: _modified, ...entry } = tagEntry(m, startedAt)
  return { ...entry, expires_at: m.expires_at ?? new Date(Date.now() + 5 * 60_000).toISOString(), size_vram: m.size_vram ?? 0 }
}
