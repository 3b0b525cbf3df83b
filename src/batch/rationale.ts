/**
 * LLM-written rationale: each scored metric's rule-based rationale may be rewritten by a model from the
 * evidence. Any failure (timeout, error, an answer that is not `{"rationale": "..."}`) keeps the rules
 * text, so a batch never fails because of the model; `rationale_source` records which one is there.
 */
import { networkReason } from '../backends/timeouts.ts'
import { type ChatAnswer, type ServeClient, transportCause } from '../client/client.ts'
import type { OrchConfig } from '../config/schema.ts'
import { OrchError } from '../core/errors.ts'
import { logger } from '../core/log.ts'
import { Engine } from '../scheduler/engine.ts'
import type { MetricResult } from './metrics/shared.ts'

export type RationaleSource = 'rules' | 'llm'

/** Asks a model one question (system + user prompt) and returns its raw text answer. */
export type RationaleWriter = (system: string, user: string, signal: AbortSignal) => Promise<string>

export const DEFAULT_RATIONALE_TIMEOUT_MS = 30_000

export const RATIONALE_SYSTEM =
  'You explain a cloud-infrastructure metric score (0-5) from its evidence. Explain the score from the evidence in 1-3 sentences. ' +
  'Answer with JSON only: {"rationale": "..."}'

/** A scored metric; one that could not be scored (`score: null`, with an error) keeps its own rationale. */
const isResult = (value: unknown): value is MetricResult =>
  typeof value === 'object' && value !== null && typeof (value as { score?: unknown }).score === 'number' && 'metric_id' in value

function promptFor(r: MetricResult): string {
  return JSON.stringify({ metric_id: r.metric_id, score: r.score, evidence: r.evidence, gaps: r.gaps })
}

/** The rationale in a model's answer, or undefined when the answer is not the JSON asked for. */
export function parseRationale(text: string): string | undefined {
  try {
    const value = JSON.parse(text) as { rationale?: unknown }
    const rationale = typeof value === 'object' && value !== null ? value.rationale : undefined
    return typeof rationale === 'string' && rationale.trim() !== '' ? rationale.trim() : undefined
  } catch {
    return undefined
  }
}

async function ask(writer: RationaleWriter, r: MetricResult, timeoutMs: number): Promise<string | undefined> {
  const signal = AbortSignal.timeout(timeoutMs)
  let timer: ReturnType<typeof setTimeout> | undefined
  // The timeout wins even over a writer that ignores its signal.
  const timedOut = new Promise<undefined>((done) => {
    timer = setTimeout(() => done(undefined), timeoutMs)
  })
  try {
    const text = await Promise.race([writer(RATIONALE_SYSTEM, promptFor(r), signal), timedOut])
    return text === undefined ? undefined : parseRationale(text)
  } catch {
    return undefined
  } finally {
    clearTimeout(timer)
  }
}

/** Every scored metric gets `rationale_source`; with a writer, the model's rationale where it answers well. */
export async function writeRationales<T>(
  metrics: Record<string, T>,
  writer: RationaleWriter | undefined,
  options: { timeoutMs?: number } = {},
): Promise<Record<string, T>> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_RATIONALE_TIMEOUT_MS
  const out: Record<string, T> = {}
  for (const [id, value] of Object.entries(metrics)) {
    if (!isResult(value)) {
      out[id] = value
      continue
    }
    const rationale = writer ? await ask(writer, value, timeoutMs) : undefined
    out[id] = (rationale === undefined ? { ...value, rationale_source: 'rules' } : { ...value, rationale, rationale_source: 'llm' }) as T
  }
  return out
}

const messages = (system: string, user: string) => [
  { role: 'system' as const, content: system },
  { role: 'user' as const, content: user },
]

/** Through the engine: JSON output, temperature 0 so the response cache answers re-runs. */
export function engineWriter(engine: Engine, model: string): RationaleWriter {
  return async (system, user, signal) => {
    const chunk = await engine.chatOnce(
      { model, messages: messages(system, user), format: 'json', options: { temperature: 0 } },
      { signal },
    )
    return chunk.message.content
  }
}

/**
 * Through an engine of this process over the configured backends (`--llm`), and how to close it after;
 * no writer (rules only) when no backend answered its first health check.
 */
export async function localEngineWriter(
  config: OrchConfig,
  model: string,
): Promise<{ writer?: RationaleWriter; close: () => Promise<void> }> {
  const engine = new Engine({ config, healthIntervalMs: 0 })
  await engine.start()
  const close = () => engine.close()
  if (!engine.hasHealthyBackend()) {
    logger('batch').info('--llm: no backend answered its health check; rule-based rationale')
    return { close }
  }
  return { writer: engineWriter(engine, model), close }
}

/** Through a running `orch serve` (`--url`): its /api/chat, with the same request as the engine's. */
export function serveWriter(client: ServeClient, model: string): RationaleWriter {
  const where = `${client.url}/api/chat`
  return async (system, user, signal) => {
    let answer: ChatAnswer
    try {
      answer = await client.chat({ model, messages: messages(system, user), format: 'json', options: { temperature: 0 } }, signal)
    } catch (error) {
      if (signal.aborted) throw error
      const status = error instanceof OrchError ? error.status : undefined
      if (typeof status === 'number') throw new Error(`${where} answered ${status}`)
      throw new Error(`${where}: no answer: ${networkReason(transportCause(error))}`)
    }
    if (typeof answer?.message?.content !== 'string') throw new Error(`${where} answered no message`)
    return answer.message.content
  }
}
