/**
 * Why the scheduler could not give a request a backend slot. Each carries the HTTP status the server
 * answers with, whether retrying later can help, and when (`retryAfterS`, for the Retry-After header).
 */
import { OrchError } from '../core/errors.ts'

interface Facts {
  status: number
  retryable: boolean
  retryAfterS?: number
}

function schedulerError(code: string, message: string, hint: string, facts: Facts, details?: Record<string, unknown>): OrchError {
  return new OrchError(message, { code, hint, ...facts, ...(details ? { details } : {}) })
}

export function queueFullError(limit: number, retryAfterS: number): OrchError {
  return schedulerError(
    'E_QUEUE_FULL',
    `the queue is full (${limit} requests waiting, pool_max_queue_size)`,
    `retry in ${retryAfterS} s, or raise pool_max_queue_size`,
    { status: 429, retryable: true, retryAfterS },
  )
}

export function queueTimeoutError(waitedMs: number, model: string): OrchError {
  return schedulerError(
    'E_QUEUE_TIMEOUT',
    `queue_timeout: waited ${waitedMs} ms for a free slot on a backend serving "${model}" (pool_queue_timeout)`,
    'all backend slots stayed busy; add capacity (backends, concurrency) or raise pool_queue_timeout',
    { status: 503, retryable: true, retryAfterS: 1 },
    { reason: 'queue_timeout' },
  )
}

/**
 * Refused on arrival: by the measured service time, the requests ahead would hold every slot until this
 * one's queue timeout ran out, or too near it to count on. Retry-After: when the queue, draining at that
 * rate, would have room.
 */
export function queueCannotDrainError(e: {
  model: string
  ahead: number
  serviceMs: number
  slots: number
  waitMs: number
  timeoutMs: number
}): OrchError {
  const retryAfterS = Math.max(1, Math.ceil((e.waitMs - e.timeoutMs) / 1000))
  return schedulerError(
    'E_OVERLOADED',
    `the queue cannot drain within pool_queue_timeout (${e.timeoutMs} ms): ${e.ahead} waiting for "${e.model}", ~${Math.round(e.serviceMs)} ms each, ${e.slots} slot${e.slots === 1 ? '' : 's'}`,
    `retry in ${retryAfterS} s; add capacity (backends, concurrency) or raise pool_queue_timeout`,
    { status: 503, retryable: true, retryAfterS },
    {
      reason: 'queue_cannot_drain',
      waiting: e.ahead,
      service_ms: Math.round(e.serviceMs),
      slots: e.slots,
      estimated_wait_ms: Math.round(e.waitMs),
    },
  )
}

/**
 * The advice is in the message itself: the Ollama and OpenAI dialects answer with the message alone, and
 * their clients show nothing else.
 */
export function noBackendError(model: string, backends: string[]): OrchError {
  const where = backends.length > 0 ? `none of ${backends.join(', ')} answers` : 'no backend is configured'
  const start = backends.length > 0 ? 'start its model server (e.g. `ollama serve`), or ' : ''
  const advice = `${start}add a backend serving it under backends: in orch.yaml, or a pool under pools: (orch serve starts its workers); see docs/configuration.md`
  return schedulerError(
    'E_NO_BACKEND',
    `no healthy backend serves "${model}": ${where}; ${advice}`,
    'GET /ready (or orch status) lists each backend and its health; orch config init shows the shape of backends: and pools:',
    { status: 503, retryable: true, retryAfterS: 5 },
  )
}

export function modelNotFoundError(model: string, known: string[]): OrchError {
  return schedulerError(
    'E_MODEL_NOT_FOUND',
    `model "${model}" is not served by any backend (known: ${known.slice(0, 10).join(', ') || 'none'})`,
    `pull it (e.g. \`ollama pull ${model}\`) or list it under a backend's models`,
    { status: 404, retryable: false },
  )
}

export function breakerOpenError(backends: string[], retryAfterS: number): OrchError {
  return schedulerError(
    'E_BREAKER_OPEN',
    `circuit open for ${backends.join(', ')}: recent calls kept failing, so requests fail fast`,
    `a trial call is let through in ${retryAfterS} s; check the backend (orch doctor, its logs)`,
    { status: 503, retryable: true, retryAfterS },
  )
}

export function cancelledError(): OrchError {
  return schedulerError('E_CANCELLED', 'cancelled by the caller', 'the client went away or the task was cancelled', {
    status: 499,
    retryable: false,
  })
}
