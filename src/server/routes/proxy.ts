/**
 * The one shape of a model-call route on the compatible APIs: scheduling options from the headers (so a
 * malformed header is refused before the body is read), the body read and validated, the canonical
 * request made, then either the engine's stream written in the dialect's format or its one joined
 * answer converted and sent as JSON. Each route declares only what differs.
 */
import type * as v from 'valibot'
import type { ChatChunk, ChatRequest, EmbedRequest, EmbedResponse, GenerateChunk, GenerateRequest } from '../../backends/types.ts'
import type { Engine, RequestOptions } from '../../scheduler/engine.ts'
import { json, type Route, type RouteContext, readJson } from '../http.ts'
import { abortable, callOptions, type StreamFormat, streamResponse } from './compat.ts'

/** Per engine call: what it is asked, and what it answers (a stream of these, or one). */
interface Kinds {
  chat: { request: ChatRequest; answer: ChatChunk }
  generate: { request: GenerateRequest; answer: GenerateChunk }
  embed: { request: EmbedRequest; answer: EmbedResponse }
}
type Kind = keyof Kinds
type Streamable = 'chat' | 'generate'

interface Base<K extends Kind, S extends v.GenericSchema, X> {
  path: string
  /** Which engine call serves it. */
  kind: K
  body: S
  /** The canonical request (and any check the schema cannot make: a 400 thrown here). */
  toRequest(body: v.InferOutput<S>, ctx: RouteContext): Kinds[K]['request']
  /** What the stream and the answer share, made once before the call (an id, a timestamp). */
  prepare?(body: v.InferOutput<S>): X
  /** The answer given without a model call, or undefined to call the model. */
  shortcut?(body: v.InferOutput<S>): unknown
  /** The joined answer as the body of the JSON response. */
  once(answer: Kinds[K]['answer'], body: v.InferOutput<S>, shared: X): unknown
}

export interface StreamingProxy<K extends Streamable, S extends v.GenericSchema, X> extends Base<K, S, X> {
  /** Whether this request asked for a stream. */
  streamed(body: v.InferOutput<S>): boolean
  format(body: v.InferOutput<S>, shared: X): StreamFormat<Kinds[K]['answer']>
}

export type OnceProxy<S extends v.GenericSchema, X> = Base<'embed', S, X>

type Call = (engine: Engine, request: never, options: RequestOptions) => unknown

const streams: Record<Streamable, Call> = {
  chat: (engine, request: ChatRequest, options) => engine.chat(request, options),
  generate: (engine, request: GenerateRequest, options) => engine.generate(request, options),
}
const answers: Record<Kind, Call> = {
  chat: (engine, request: ChatRequest, options) => engine.chatOnce(request, options),
  generate: (engine, request: GenerateRequest, options) => engine.generateOnce(request, options),
  embed: (engine, request: EmbedRequest, options) => engine.embed(request, options),
}

/** A POST route that calls a model through the engine: streamed when the body asks for it, else one JSON answer. */
export function proxyRoute<K extends Streamable, S extends v.GenericSchema, X = undefined>(spec: StreamingProxy<K, S, X>): Route
export function proxyRoute<S extends v.GenericSchema, X = undefined>(spec: OnceProxy<S, X>): Route
export function proxyRoute(spec: StreamingProxy<Streamable, v.GenericSchema, unknown> | OnceProxy<v.GenericSchema, unknown>): Route {
  const stream = 'streamed' in spec ? spec : undefined
  const once = answers[spec.kind] as (engine: Engine, request: unknown, options: RequestOptions) => Promise<never>
  const streamed = stream && (streams[stream.kind] as (engine: Engine, request: unknown, options: RequestOptions) => AsyncIterable<unknown>)
  return {
    method: 'POST',
    path: spec.path,
    long: true,
    handler: async (ctx) => {
      const options = callOptions(ctx)
      const body = await readJson(ctx, spec.body)
      if (spec.shortcut) {
        const answer = spec.shortcut(body)
        if (answer !== undefined) return json(answer)
      }
      const request = spec.toRequest(body, ctx)
      const shared = spec.prepare?.(body)
      const { engine } = ctx.deps
      if (stream && streamed && stream.streamed(body)) {
        const call = abortable(options, ctx)
        return streamResponse(streamed(engine, request, call.options), stream.format(body, shared) as StreamFormat<unknown>, call)
      }
      return json(spec.once(await once(engine, request, options), body, shared))
    },
  }
}
