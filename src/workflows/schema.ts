/**
 * A workflow definition: a DAG of steps, each one durable task (chat, generate or embed), with an optional
 * cron schedule. The valibot schema checks shapes; `checkDefinition` (pure) checks what a schema cannot:
 * unique ids, known dependencies, no cycles (named), template references, the cron expression and the
 * timezone. Every problem names its field as a dotted path (`steps.2.depends_on.0`), like the HTTP layer.
 */
import * as v from 'valibot'
import { modelNameSchema, tenantSchema } from '../tasks/fields.ts'
import { nextRunAfter } from './cron.ts'
import { templateRefs } from './template.ts'

export const STEP_TYPES = ['chat', 'generate', 'embed'] as const
export type StepType = (typeof STEP_TYPES)[number]

export const WORKFLOW_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/
export const STEP_ID = /^[A-Za-z0-9_-]{1,64}$/
const text = v.pipe(v.string(), v.maxLength(1_000_000))
const stepId = v.pipe(v.string(), v.regex(STEP_ID, 'expected 1 to 64 letters, digits, "_" or "-"'))

const MessageSchema = v.strictObject({
  role: v.picklist(['system', 'user', 'assistant']),
  content: text,
})

export const StepSchema = v.strictObject({
  id: stepId,
  type: v.picklist(STEP_TYPES, 'expected chat, generate or embed'),
  model: modelNameSchema,
  prompt: v.optional(text),
  messages: v.optional(v.pipe(v.array(MessageSchema), v.minLength(1, 'expected at least one message'))),
  input: v.optional(v.union([text, v.array(text)], 'expected a string or an array of strings')),
  system: v.optional(text),
  options: v.optional(v.record(v.string(), v.unknown())),
  // Step ids, so an unknown one is reported as such and a long string is not echoed back in a message.
  depends_on: v.optional(v.pipe(v.array(stepId), v.maxLength(200, 'expected at most 200 steps'))),
})

export const DefinitionEntries = {
  name: v.pipe(v.string(), v.regex(WORKFLOW_NAME, 'expected 1 to 128 letters, digits, "_", "." or "-"')),
  description: v.optional(v.pipe(v.string(), v.maxLength(10_000))),
  steps: v.pipe(v.array(StepSchema), v.minLength(1, 'expected at least one step'), v.maxLength(200, 'expected at most 200 steps')),
  schedule: v.optional(
    v.pipe(v.string(), v.minLength(1, 'expected a cron expression'), v.maxLength(256, 'expected at most 256 characters')),
  ),
  timezone: v.optional(
    v.pipe(
      v.string(),
      v.minLength(1, 'expected an IANA timezone such as Europe/Berlin'),
      v.maxLength(128, 'expected at most 128 characters'),
    ),
  ),
  enabled: v.optional(v.boolean()),
  priority: v.optional(v.pipe(v.number(), v.finite())),
  /** Every step's task gets it: the task API's own rule (POST /queue/submit), not a looser copy. */
  tenant: v.optional(tenantSchema),
}

export const DefinitionSchema = v.strictObject(DefinitionEntries)

export type Step = v.InferOutput<typeof StepSchema>
export type Definition = v.InferOutput<typeof DefinitionSchema>

export interface DefinitionIssue {
  field: string
  message: string
}

/** Every problem valibot cannot see, in field order; empty when the definition is sound. */
export function checkDefinition(def: Definition, now = Date.now()): DefinitionIssue[] {
  const issues: DefinitionIssue[] = []
  const index = new Map<string, number>()
  const ids = new Set(def.steps.map((s) => s.id))
  def.steps.forEach((step, i) => {
    if (index.has(step.id))
      issues.push({ field: `steps.${i}.id`, message: `duplicate step id "${step.id}" (also steps.${index.get(step.id)})` })
    else index.set(step.id, i)
    issues.push(...checkInputs(step, i))
    ;(step.depends_on ?? []).forEach((dep, j) => {
      if (!ids.has(dep)) {
        issues.push({ field: `steps.${i}.depends_on.${j}`, message: `unknown step "${dep}"` })
      } else if (dep === step.id) {
        issues.push({ field: `steps.${i}.depends_on.${j}`, message: `step "${dep}" depends on itself` })
      }
    })
  })
  if (issues.length > 0) return issues
  const cycle = findCycle(def.steps)
  if (cycle) {
    const first = def.steps.findIndex((s) => s.id === cycle[0])
    return [{ field: `steps.${first}.depends_on`, message: `dependency cycle: ${cycle.join(' → ')}` }]
  }
  issues.push(...checkTemplates(def.steps))
  issues.push(...checkSchedule(def, now))
  return issues
}

function checkInputs(step: Step, i: number): DefinitionIssue[] {
  const at = (key: string, message: string) => [{ field: `steps.${i}.${key}`, message }]
  if (step.type === 'chat') {
    if (step.prompt === undefined && step.messages === undefined) return at('prompt', 'a chat step needs prompt or messages')
    if (step.prompt !== undefined && step.messages !== undefined) return at('messages', 'give prompt or messages, not both')
  }
  if (step.type === 'generate') {
    if (step.prompt === undefined) return at('prompt', 'a generate step needs a prompt')
    if (step.messages !== undefined) return at('messages', 'a generate step takes a prompt, not messages')
  }
  if (step.type === 'embed') {
    if (step.input === undefined) return at('input', 'an embed step needs input (a string or an array of strings)')
    if (step.prompt !== undefined || step.messages !== undefined) return at('prompt', 'an embed step takes input, not prompt or messages')
  }
  if (step.type !== 'embed' && step.input !== undefined)
    return at('input', `a ${step.type} step takes ${step.type === 'chat' ? 'prompt or messages' : 'a prompt'}, not input`)
  return []
}

/** The first cycle found, as step ids with the first repeated at the end (`a → b → a`). */
export function findCycle(steps: readonly Step[]): string[] | undefined {
  const deps = new Map(steps.map((s) => [s.id, s.depends_on ?? []]))
  const state = new Map<string, 'visiting' | 'done'>()
  const path: string[] = []
  const visit = (id: string): string[] | undefined => {
    if (state.get(id) === 'done') return undefined
    if (state.get(id) === 'visiting') return [...path.slice(path.indexOf(id)), id]
    state.set(id, 'visiting')
    path.push(id)
    for (const dep of deps.get(id) ?? []) {
      const found = visit(dep)
      if (found) return found
    }
    path.pop()
    state.set(id, 'done')
    return undefined
  }
  for (const step of steps) {
    const found = visit(step.id)
    // Found walking dependencies (child → parent): reverse so it reads in execution order.
    if (found) return found.reverse()
  }
  return undefined
}

/** Every step a step waits for, directly or through others. Needs an acyclic graph. */
export function ancestors(steps: readonly Step[]): Map<string, Set<string>> {
  const byId = new Map(steps.map((s) => [s.id, s]))
  const memo = new Map<string, Set<string>>()
  const of = (id: string): Set<string> => {
    const known = memo.get(id)
    if (known) return known
    const set = new Set<string>()
    for (const dep of byId.get(id)?.depends_on ?? []) {
      set.add(dep)
      for (const a of of(dep)) set.add(a)
    }
    memo.set(id, set)
    return set
  }
  for (const step of steps) of(step.id)
  return memo
}

function checkTemplates(steps: readonly Step[]): DefinitionIssue[] {
  const issues: DefinitionIssue[] = []
  const before = ancestors(steps)
  steps.forEach((step, i) => {
    for (const { field, text } of templatedFields(step)) {
      for (const ref of templateRefs(text)) {
        const where = `steps.${i}.${field}`
        if (ref.field !== 'output') issues.push({ field: where, message: `{{${ref.raw}}}: only steps.<id>.output can be referenced` })
        else if (!steps.some((s) => s.id === ref.step)) issues.push({ field: where, message: `{{${ref.raw}}}: unknown step "${ref.step}"` })
        else if (!before.get(step.id)?.has(ref.step)) {
          issues.push({
            field: where,
            message: `{{${ref.raw}}}: step "${ref.step}" is not in depends_on (directly or through other steps)`,
          })
        }
      }
    }
  })
  return issues
}

/** The fields of a step that may hold templates, with their dotted names. */
export function templatedFields(step: Step): Array<{ field: string; text: string }> {
  const fields: Array<{ field: string; text: string }> = []
  if (step.prompt !== undefined) fields.push({ field: 'prompt', text: step.prompt })
  if (step.system !== undefined) fields.push({ field: 'system', text: step.system })
  step.messages?.forEach((m, j) => {
    fields.push({ field: `messages.${j}.content`, text: m.content })
  })
  if (typeof step.input === 'string') fields.push({ field: 'input', text: step.input })
  else
    step.input?.forEach((t, j) => {
      fields.push({ field: `input.${j}`, text: t })
    })
  return fields
}

function checkSchedule(def: Definition, now: number): DefinitionIssue[] {
  if (def.timezone !== undefined && !isTimezone(def.timezone)) {
    return [{ field: 'timezone', message: `unknown timezone "${def.timezone}" (expected an IANA name such as Europe/Berlin or UTC)` }]
  }
  if (def.schedule === undefined) return []
  try {
    if (nextRunAfter(def.schedule, def.timezone ?? 'UTC', now) === undefined) {
      return [{ field: 'schedule', message: `"${def.schedule}" never fires again` }]
    }
  } catch (error) {
    return [
      {
        field: 'schedule',
        message: `invalid cron expression "${def.schedule}": ${(error as Error).message.replace(/^CronPattern: /, '')}`,
      },
    ]
  }
  return []
}

export function isTimezone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz })
    return true
  } catch {
    return false
  }
}
