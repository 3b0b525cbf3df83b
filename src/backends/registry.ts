/**
 * Backends from configuration, and helpers for callers that want one answer instead of a stream.
 */
import type { BackendConfig, OrchConfig } from '../config/schema.ts'
import { logger } from '../core/log.ts'
import { ollamaBackend } from './ollama.ts'
import { openaiBackend } from './openai.ts'
import type { BackendTimeouts } from './timeouts.ts'
import type { Backend, ChatChunk, GenerateChunk } from './types.ts'

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

/** One chunk for the whole answer: the content (and thinking, tool calls) of all, the stats of the last. */
export async function collectChat(chunks: AsyncIterable<ChatChunk>): Promise<ChatChunk> {
  let content = ''
  let thinking = ''
  const toolCalls: unknown[] = []
  let last: ChatChunk | undefined
  for await (const chunk of chunks) {
    content += chunk.message.content
    if (chunk.message.thinking) thinking += chunk.message.thinking
    if (chunk.message.tool_calls) toolCalls.push(...chunk.message.tool_calls)
    last = chunk
  }
  if (!last) throw new Error('collectChat: the backend sent no chunk')
  const message: ChatChunk['message'] = { role: 'assistant', content }
  if (thinking) message.thinking = thinking
  if (toolCalls.length > 0) message.tool_calls = toolCalls
  return { ...last, message, done: true }
}

/** One chunk for the whole answer: the response text of all, the stats (and context) of the last. */
export async function collectGenerate(chunks: AsyncIterable<GenerateChunk>): Promise<GenerateChunk> {
  let response = ''
  let thinking = ''
  let last: GenerateChunk | undefined
  for await (const chunk of chunks) {
    response += chunk.response
    if (chunk.thinking) thinking += chunk.thinking
    last = chunk
  }
  if (!last) throw new Error('collectGenerate: the backend sent no chunk')
  return { ...last, response, ...(thinking ? { thinking } : {}), done: true }
}
