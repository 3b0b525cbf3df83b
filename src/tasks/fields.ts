/**
 * The rules of the task fields that more than one entry point fills in: `POST /queue/submit` and workflow
 * steps (each step becomes a task). One definition, so a workflow cannot write into a task what the task
 * API refuses.
 */
import * as v from 'valibot'

export const MAX_MODEL_LENGTH = 256
export const MAX_IDEMPOTENCY_KEY_LENGTH = 256

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/

export const modelNameSchema = v.pipe(
  v.string('expected model name (a string)'),
  v.minLength(1, 'expected a non-empty model name'),
  v.maxLength(MAX_MODEL_LENGTH, `expected at most ${MAX_MODEL_LENGTH} characters`),
  v.check((m) => !CONTROL.test(m), 'expected a model name without control characters'),
)

export const tenantSchema = v.pipe(
  v.string('expected tenant name (a string)'),
  v.regex(/^[\w.:@-]{1,128}$/, 'expected 1 to 128 of letters, digits, . _ : @ -'),
)
