/**
 * Backends from configuration, and helpers for callers that want one answer instead of a stream.
 */
import type { BackendConfig, OrchConfig } from '../config/schema.ts'
import { logger } from '../core/log.ts'
import { ollamaBackend } from './ollama.ts'
import { openaiBackend } from './openai.ts'
import type { BackendTimeouts } from './timeouts.ts'
import { type Backend, BackendError, type ChatChunk, type GenerateChunk } from './types.ts'

export interface BackendExtras {
  /** Bearer token sent with every request. */
  apiKey?: string | undefined
}

export function createBackend(cfg: BackendConfig, timeouts: BackendTimeouts, extras: BackendExtras = {}): Backend {
  switch (cfg.type) {
    case 'openai':
      return openaiBackend({ name: cfg.name, url: cfg.url, apiKey: extras.apiKey, timeouts })
    default:
      return ollamaBackend({ name: cfg.name, url: cfg.url, apiKey: extras.apiKey, timeouts })
  }
}

/** The token named by `api_key_env`; an unset or empty variable is said once, and requests go without one. */
export function apiKeyFor(cfg: BackendConfig, env: Record<string, string | undefined>): string | undefined {
  if (cfg.api_key_env === undefined) return undefined
  const key = env[cfg.api_key_env]
  if (key) return key
  logger('config').warn(`backends: ${cfg.name}: api_key_env names ${cfg.api_key_env}, which is not set; requests go without a token`)
  return undefined
}

export function createBackends(config: OrchConfig, env: Record<string, string | undefined> = process.env): Backend[] {
  return config.backends.map((cfg) => createBackend(cfg, config.backend_timeouts, { apiKey: apiKeyFor(cfg, env) }))
}

/**
 * One chunk for the whole answer, from the chunks of a stream in order: the fields (stats, done_reason,
 * `done`) of the last; the message's role from the first chunk that names one (else `assistant`); content,
 * thinking and tool calls of every chunk in order (thinking and tool_calls only when there are any).
 */
export function joinChat(chunks: readonly ChatChunk[]): ChatChunk {
  const last = chunks.at(-1)
  if (!last) throw new BackendError('the backend answered with no chunks', { kind: 'protocol', backend: '-' })
  let role: ChatChunk['message']['role'] | undefined
  let content = ''
  let thinking = ''
  const toolCalls: unknown[] = []
  for (const { message } of chunks) {
    role ??= message.role
    content += message.content ?? ''
    if (message.thinking) thinking += message.thinking
    if (message.tool_calls) toolCalls.push(...message.tool_calls)
  }
  const { thinking: _thinking, tool_calls: _toolCalls, ...rest } = last.message
  const message: ChatChunk['message'] = { ...rest, role: role ?? 'assistant', content }
  if (thinking) message.thinking = thinking
  if (toolCalls.length > 0) message.tool_calls = toolCalls
  return { ...last, message }
}

/** One chunk for the whole answer: the fields (stats, context, `done`) of the last; response and thinking of every chunk in order. */
export function joinGenerate(chunks: readonly GenerateChunk[]): GenerateChunk {
  const last = chunks.at(-1)
  if (!last) throw new BackendError('the backend answered with no chunks', { kind: 'protocol', backend: '-' })
  let response = ''
  let thinking = ''
  for (const chunk of chunks) {
    response += chunk.response ?? ''
    if (chunk.thinking) thinking += chunk.thinking
  }
  const { thinking: _thinking, ...rest } = last
  return thinking ? { ...rest, response, thinking } : { ...rest, response }
}

async function gather<T>(chunks: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = []
  for await (const chunk of chunks) all.push(chunk)
  return all
}

/** A whole stream read and joined (joinChat). */
export async function collectChat(chunks: AsyncIterable<ChatChunk>): Promise<ChatChunk> {
  return joinChat(await gather(chunks))
}

/** A whole stream read and joined (joinGenerate). */
export async function collectGenerate(chunks: AsyncIterable<GenerateChunk>): Promise<GenerateChunk> {
  return joinGenerate(await gather(chunks))
}
