/**
 * Embedding coalescing (`llm_orchestration.batching`): embed requests for the same model and options are
 * gathered for at most `intervalMs` or until `batchSize` inputs, sent as ONE embed call with an input
 * array, and the vectors are split back to their callers in order. At most `maxConcurrentBatches` calls
 * per group are in flight; further full batches wait for one to finish.
 *
 * A caller that gives up (abort) before its batch is sent is dropped from it; once sent, a shared call is
 * aborted only when every caller in it has given up.
 */
import { cancelledError } from './errors.ts'

export interface BatcherOptions {
  batchSize: number
  intervalMs: number
  maxConcurrentBatches: number
  /** One backend call for the whole batch; returns one vector per input, in order. */
  execute: (group: BatchGroupKey, inputs: string[], context: BatchContext) => Promise<BatchAnswer>
}

/** Vectors in input order, and the input tokens the backend counted (when it reports them). */
export interface BatchAnswer {
  embeddings: number[][]
  prompt_eval_count?: number
}

export interface BatchGroupKey {
  model: string
  /** Everything else that must be equal for requests to share a call (options, truncate), as canonical JSON. */
  variant: string
}

export interface BatchContext {
  signal: AbortSignal
  priority: number
  tenant: string
}

interface Member {
  inputs: string[]
  priority: number
  tenant: string
  signal: AbortSignal | undefined
  resolve: (answer: BatchAnswer) => void
  reject: (error: unknown) => void
  onAbort?: () => void
}

interface Group {
  key: BatchGroupKey
  pending: Member[]
  pendingInputs: number
  timer: ReturnType<typeof setTimeout> | undefined
  inflight: number
  ready: Member[][]
}

export class EmbedBatcher {
  private readonly groups = new Map<string, Group>()
  readonly stats = { requests: 0, calls: 0, inputs: 0 }

  constructor(private readonly options: BatcherOptions) {}

  add(
    key: BatchGroupKey,
    inputs: string[],
    context: { signal?: AbortSignal; priority?: number; tenant?: string } = {},
  ): Promise<BatchAnswer> {
    if (context.signal?.aborted) return Promise.reject(cancelledError())
    this.stats.requests++
    const id = `${key.model}\u0000${key.variant}`
    let group = this.groups.get(id)
    if (!group) {
      group = { key, pending: [], pendingInputs: 0, timer: undefined, inflight: 0, ready: [] }
      this.groups.set(id, group)
    }
    const g = group
    return new Promise<BatchAnswer>((resolve, reject) => {
      const member: Member = {
        inputs,
        priority: context.priority ?? 0,
        tenant: context.tenant ?? 'default',
        signal: context.signal,
        resolve,
        reject,
      }
      if (context.signal) {
        member.onAbort = () => {
          const at = g.pending.indexOf(member)
          if (at < 0) return
          g.pending.splice(at, 1)
          g.pendingInputs -= member.inputs.length
          reject(cancelledError())
        }
        context.signal.addEventListener('abort', member.onAbort, { once: true })
      }
      g.pending.push(member)
      g.pendingInputs += inputs.length
      if (g.pendingInputs >= this.options.batchSize) this.seal(g)
      else g.timer ??= setTimeout(() => this.seal(g), this.options.intervalMs)
    })
  }

  /** Close the pending batch and send it when a concurrency slot allows. */
  private seal(group: Group): void {
    if (group.timer) clearTimeout(group.timer)
    group.timer = undefined
    if (group.pending.length === 0) return
    group.ready.push(group.pending)
    group.pending = []
    group.pendingInputs = 0
    this.flush(group)
  }

  private flush(group: Group): void {
    while (group.ready.length > 0 && group.inflight < this.options.maxConcurrentBatches) {
      const members = group.ready.shift() as Member[]
      group.inflight++
      this.send(group, members).finally(() => {
        group.inflight--
        this.flush(group)
        if (group.inflight === 0 && group.pending.length === 0 && group.ready.length === 0) {
          this.groups.delete(`${group.key.model}\u0000${group.key.variant}`)
        }
      })
    }
  }

  private async send(group: Group, members: Member[]): Promise<void> {
    const controller = new AbortController()
    let live = members.length
    for (const member of members) {
      if (member.onAbort) member.signal?.removeEventListener('abort', member.onAbort)
      member.onAbort = () => {
        member.reject(cancelledError())
        if (--live === 0) controller.abort()
      }
      member.signal?.addEventListener('abort', member.onAbort, { once: true })
    }
    const inputs = members.flatMap((m) => m.inputs)
    this.stats.calls++
    this.stats.inputs += inputs.length
    const context = {
      signal: controller.signal,
      priority: Math.max(...members.map((m) => m.priority)),
      tenant: (members[0] as Member).tenant,
    }
    try {
      const answer = await this.options.execute(group.key, inputs, context)
      const vectors = answer.embeddings
      if (vectors.length !== inputs.length) throw new Error(`backend returned ${vectors.length} embeddings for ${inputs.length} inputs`)
      const tokens = answer.prompt_eval_count === undefined ? undefined : shareTokens(answer.prompt_eval_count, members)
      let offset = 0
      for (const [i, member] of members.entries()) {
        const embeddings = vectors.slice(offset, offset + member.inputs.length)
        member.resolve(tokens ? { embeddings, prompt_eval_count: tokens[i] as number } : { embeddings })
        offset += member.inputs.length
      }
    } catch (error) {
      for (const member of members) member.reject(error)
    } finally {
      for (const member of members) if (member.onAbort) member.signal?.removeEventListener('abort', member.onAbort)
    }
  }
}

/**
 * A shared call's token count split among its callers by the length of their inputs (largest remainders,
 * so the shares add up to the count): exact for a caller alone in its call, an estimate otherwise.
 */
export function shareTokens(total: number, members: { inputs: string[] }[]): number[] {
  const weights = members.map((m) => m.inputs.reduce((n, text) => n + text.length, 0))
  const sum = weights.reduce((a, b) => a + b, 0)
  const exact = weights.map((w) => (sum === 0 ? total / members.length : (total * w) / sum))
  const shares = exact.map(Math.floor)
  let left = total - shares.reduce((a, b) => a + b, 0)
  const order = exact.map((x, i) => [x - Math.floor(x), i] as const).sort((a, b) => b[0] - a[0])
  for (const [, i] of order) {
    if (left <= 0) break
    shares[i] = (shares[i] as number) + 1
    left--
  }
  return shares
}
