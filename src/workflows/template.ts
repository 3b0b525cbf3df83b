/**
 * Step templates: `{{steps.<id>.output}}` in a prompt, system text, message or embed input is replaced by
 * that step's output text (chat: message.content, generate: response, embed: the embeddings as JSON).
 * Any other `{{...}}` is left as written. Pure.
 */
import type { Step } from './schema.ts'

const REF = /\{\{\s*steps\.([^.{}\s]+)\.([^{}\s]+)\s*\}\}/g

export interface TemplateRef {
  step: string
  field: string
  /** The reference as written inside the braces, trimmed. */
  raw: string
}

export function templateRefs(text: string): TemplateRef[] {
  return [...text.matchAll(REF)].map((m) => ({ step: m[1] as string, field: m[2] as string, raw: `steps.${m[1]}.${m[2]}` }))
}

/** Replace every output reference; a reference to a step without an output is an error (validation prevents it). */
export function renderTemplate(text: string, outputs: ReadonlyMap<string, string>): string {
  return text.replace(REF, (whole, step: string, field: string) => {
    if (field !== 'output') return whole
    const output = outputs.get(step)
    if (output === undefined) throw new Error(`{{steps.${step}.output}}: step "${step}" has no output`)
    return output
  })
}

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
