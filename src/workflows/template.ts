/**
 * Step templates: `{{steps.<id>.output}}` in a prompt, system text, message or embed input is replaced by
 * that step's output text (chat: message.content, generate: response, embed: the embeddings as JSON).
 * Any other `{{...}}` is left as written. Pure.
 */

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
