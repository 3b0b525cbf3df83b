/** A step's task payload: its model request with `{{steps.<id>.output}}` filled from earlier steps' outputs. */
import type { Step } from './schema.ts'
import { renderTemplate } from './template.ts'

/** The text of a finished task's result that `{{steps.<id>.output}}` stands for. */
export function outputText(type: string, result: unknown): string {
  const r = (result ?? {}) as { message?: { content?: unknown }; response?: unknown; embeddings?: unknown }
  if (type === 'chat') return typeof r.message?.content === 'string' ? r.message.content : ''
  if (type === 'generate') return typeof r.response === 'string' ? r.response : ''
  if (type === 'embed') return JSON.stringify(r.embeddings ?? [])
  return typeof result === 'string' ? result : JSON.stringify(result ?? null)
}

/** The task payload (an Ollama request) for a step, its templates filled from earlier outputs. */
export function stepRequest(step: Step, outputs: ReadonlyMap<string, string>): Record<string, unknown> {
  const fill = (text: string) => renderTemplate(text, outputs)
  const options = step.options ? { options: step.options } : {}
  if (step.type === 'embed') {
    const input = typeof step.input === 'string' ? fill(step.input) : (step.input ?? []).map(fill)
    return { model: step.model, input, ...options }
  }
  if (step.type === 'generate') {
    return {
      model: step.model,
      prompt: fill(step.prompt ?? ''),
      ...(step.system !== undefined ? { system: fill(step.system) } : {}),
      ...options,
    }
  }
  const messages = step.messages
    ? step.messages.map((m) => ({ role: m.role, content: fill(m.content) }))
    : [{ role: 'user', content: fill(step.prompt ?? '') }]
  const system = step.system !== undefined ? [{ role: 'system', content: fill(step.system) }] : []
  return { model: step.model, messages: [...system, ...messages], ...options }
}
