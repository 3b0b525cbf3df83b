/**
 * What `POST /queue/submit` accepts: one task object, or an array of them for bulk submission. Validated
 * with valibot; the first problem becomes a 400 that names its field as a path (`payload.messages[0].role`,
 * `[3].type` in a bulk body), so a client can point at the mistake.
 */
import * as v from 'valibot'
import { httpError } from '../core/errors.ts'
import { MAX_IDEMPOTENCY_KEY_LENGTH, modelNameSchema, tenantSchema } from './fields.ts'
import type { SubmitInput } from './queue.ts'

/** Most tasks one bulk request may carry. */
export const MAX_BULK = 10_000

const text = (what: string) => v.string(`expected ${what} (a string)`)
const nonEmpty = (what: string, max: number) =>
  v.pipe(text(what), v.minLength(1, `expected a non-empty ${what}`), v.maxLength(max, `expected at most ${max} characters`))

const common = {
  model: v.optional(modelNameSchema),
  priority: v.optional(v.pipe(v.number('expected a number'), v.finite('expected a finite number'))),
  tenant: v.optional(tenantSchema),
  idempotency_key: v.optional(nonEmpty('idempotency key', MAX_IDEMPOTENCY_KEY_LENGTH)),
  max_attempts: v.optional(
    v.pipe(
      v.number('expected a number'),
      v.integer('expected an integer'),
      v.minValue(1, 'expected at least 1'),
      v.maxValue(100, 'expected at most 100'),
    ),
  ),
}

const payloadModel = { model: v.optional(modelNameSchema) }
const message = v.looseObject({
  role: v.picklist(['system', 'user', 'assistant', 'tool'], 'expected "system", "user", "assistant" or "tool"'),
  content: text('message text'),
})
const options = { options: v.optional(v.record(v.string(), v.unknown(), 'expected an object of model options')) }

/** The payloads are Ollama's request bodies: the fields the engine needs are checked, the rest pass through. */
const taskSchema = v.variant(
  'type',
  [
    v.strictObject({
      type: v.literal('chat'),
      payload: v.looseObject(
        {
          ...payloadModel,
          ...options,
          messages: v.pipe(v.array(message, 'expected an array of messages'), v.minLength(1, 'expected at least one message')),
        },
        'expected an Ollama chat request',
      ),
      ...common,
    }),
    v.strictObject({
      type: v.literal('generate'),
      payload: v.looseObject({ ...payloadModel, ...options, prompt: text('prompt') }, 'expected an Ollama generate request'),
      ...common,
    }),
    v.strictObject({
      type: v.literal('embed'),
      payload: v.looseObject(
        {
          ...payloadModel,
          ...options,
          input: v.union(
            [text('input'), v.pipe(v.array(text('input')), v.minLength(1, 'expected at least one input'))],
            'expected a string or an array of strings',
          ),
        },
        'expected an Ollama embed request',
      ),
      ...common,
    }),
  ],
  'expected "chat", "generate" or "embed"',
)

const FIELDS = ['type', 'model', 'payload', 'priority', 'tenant', 'idempotency_key', 'max_attempts']

/**
 * The body as task inputs. `headerKey` (the Idempotency-Key header) is the key of a single task without
 * one, and `KEY/INDEX` for each item of a bulk body without one, so a retried bulk request is idempotent too.
 */
export function parseSubmit(body: unknown, headerKey: string | null): { bulk: boolean; inputs: SubmitInput[] } {
  if (!Array.isArray(body)) return { bulk: false, inputs: [parseTask(body, '', headerKey)] }
  if (body.length === 0) throw invalid('', 'expected at least one task', body)
  if (body.length > MAX_BULK) throw invalid('', `expected at most ${MAX_BULK} tasks in one request, got ${body.length}`, undefined)
  return { bulk: true, inputs: body.map((item, i) => parseTask(item, `[${i}]`, headerKey === null ? null : `${headerKey}/${i}`)) }
}

function parseTask(data: unknown, prefix: string, headerKey: string | null): SubmitInput {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw invalid(prefix, 'expected a task object', data)
  const result = v.safeParse(taskSchema, data, { abortEarly: true })
  if (!result.success) {
    const issue = result.issues[0] as v.BaseIssue<unknown>
    const field = pathOf(issue, prefix)
    if (issue.expected === 'never') throw invalid(field, `unknown field (expected one of ${FIELDS.join(', ')})`, undefined)
    throw invalid(field, issue.input === undefined ? 'required' : issue.message, issue.input)
  }
  const task = result.output
  const model = task.model ?? task.payload.model
  if (model === undefined) throw invalid(`${prefix}model`, 'required (here or as payload.model)', undefined)
  const input: SubmitInput = {
    type: task.type,
    model,
    // The engine runs the payload as the request: it names the model the task was queued for.
    payload: task.payload.model === model ? task.payload : { ...task.payload, model },
  }
  if (task.priority !== undefined) input.priority = task.priority
  if (task.tenant !== undefined) input.tenant = task.tenant
  const key = task.idempotency_key ?? headerKey ?? undefined
  if (key !== undefined) input.idempotency_key = key
  if (task.max_attempts !== undefined) input.max_attempts = task.max_attempts
  return input
}

/** `payload.messages[0].role`: array indexes in brackets, keys dotted. */
function pathOf(issue: v.BaseIssue<unknown>, prefix: string): string {
  let out = prefix
  for (const item of issue.path ?? []) {
    const key = item.key
    out += typeof key === 'number' ? `[${key}]` : out === '' ? String(key) : `.${String(key)}`
  }
  return out
}

function invalid(field: string, message: string, input: unknown) {
  const got = input === undefined ? '' : `, got ${JSON.stringify(input)?.slice(0, 60) ?? String(input)}`
  const where = field === '' ? 'the body' : field
  return httpError(400, `${where}: ${message}${got}`, 'E_VALIDATION', { field })
}
