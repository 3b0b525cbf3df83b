/**
 * `orch tasks`: the durable task API of a running `orch serve` from the shell — submit (optionally waiting
 * for the result), get, list, cancel, wait and watch the event stream. Exit code 1 when a waited-for task
 * failed or was cancelled, so scripts can chain on it; 130 when Ctrl-C stopped the wait (the task goes on).
 */
import { readFileSync } from 'node:fs'
import { parseDurationMs } from '../src/core/duration.ts'
import { ExitCode, OrchError, UsageError } from '../src/core/errors.ts'
import type { Task } from '../src/tasks/queue.ts'
import { defineOrchCommand, globalArgs, printJson, printText } from './_args.ts'
import { type ServeClient, serveClient, type TaskWait, urlArg } from './_client.ts'
import { formatTable } from './_table.ts'

const base = { ...globalArgs, ...urlArg }
const idArg = { id: { type: 'positional', required: true, valueHint: 'ID', description: 'Task id (t_…)' } } as const
const timeoutArg = {
  timeout: { type: 'string', valueHint: 'DURATION', description: 'Give up waiting after this long (30s, 5m, 1h30m; default: no limit)' },
} as const

const submit = defineOrchCommand({
  meta: { name: 'submit', description: 'Queue a task (chat, generate or embed); prints its id, or its result with --wait' },
  args: {
    ...base,
    type: { type: 'string', valueHint: 'TYPE', description: 'chat | generate | embed (default generate)' },
    model: { type: 'string', valueHint: 'NAME', description: 'Model to run it on (default: payload.model)' },
    prompt: {
      type: 'string',
      valueHint: 'TEXT',
      description: 'Build the payload from this text (a prompt, a user message or the input to embed)',
    },
    payload: { type: 'string', valueHint: 'JSON|@FILE', description: 'The Ollama request as JSON, or @file (@- reads stdin)' },
    priority: { type: 'string', valueHint: 'N', description: 'Higher runs first (default 0)' },
    tenant: { type: 'string', valueHint: 'NAME', description: 'Tenant (fair share, idempotency scope; default "default")' },
    key: { type: 'string', valueHint: 'KEY', description: 'Idempotency key: submitting it again returns the same task' },
    wait: { type: 'boolean', description: 'Wait until the task finishes and print it' },
    ...timeoutArg,
  },
  examples: [
    'orch tasks submit --model llama3.2 --prompt "Why is the sky blue?" --wait',
    'orch tasks submit --type chat --model llama3.2 --prompt "Hello" --key greet-1 --json',
    'orch tasks submit --type embed --payload \'{"model":"nomic-embed-text","input":["a","b"]}\'',
    'orch tasks submit --type chat --payload @request.json --priority 5 --tenant team-a',
  ],
  async run({ args }) {
    const client = serveClient(args)
    const body = submitBody(args)
    const submitted = await client.submitTask(body)
    const again = submitted.created ? '' : ' (already submitted with this key)'
    if (!args.wait) {
      if (args.json) printJson(submitted)
      else printText(`${submitted.id} ${submitted.state}${again}`)
      return 0
    }
    // Progress goes to stderr: stdout carries only the result (or the final JSON with --json).
    const still = submitted.state === 'queued' || submitted.state === 'running' ? `; the task stays ${submitted.state}` : ''
    progress(`${submitted.id} ${submitted.state}${again}; waiting for it to finish (Ctrl-C stops waiting${still})`)
    return finish(await waitFor(client, submitted.id, parseTimeout(args.timeout)), args.json)
  },
})

const get = defineOrchCommand({
  meta: { name: 'get', description: 'Show a task: state, attempts, timings, result or error' },
  args: { ...base, ...idArg },
  examples: ['orch tasks get t_0mwueln3w00012hk9v2av', 'orch tasks get t_0mwueln3w00012hk9v2av --json'],
  async run({ args }) {
    const task = await serveClient(args).task<Task>(args.id)
    if (args.json) printJson(task)
    else printText(describe(task))
  },
})

const list = defineOrchCommand({
  meta: { name: 'list', description: 'List tasks, newest first, a page at a time' },
  args: {
    ...base,
    state: { type: 'string', valueHint: 'STATE', description: 'queued | running | done | failed | cancelled' },
    tenant: { type: 'string', valueHint: 'NAME', description: 'Only this tenant’s tasks' },
    limit: { type: 'string', valueHint: 'N', description: 'Tasks per page, 1 to 1000 (default 50)' },
    cursor: { type: 'string', valueHint: 'CURSOR', description: 'next_cursor of the previous page' },
  },
  examples: ['orch tasks list', 'orch tasks list --state failed --limit 20', 'orch tasks list --tenant team-a --json'],
  async run({ args }) {
    const query = new URLSearchParams()
    for (const key of ['state', 'tenant', 'limit', 'cursor'] as const) if (args[key] !== undefined) query.set(key, String(args[key]))
    const page = await serveClient(args).tasks<Task>(query)
    if (args.json) return printJson(page)
    if (page.tasks.length === 0) return printText('no tasks')
    printText(table(page.tasks))
    if (page.next_cursor) console.error(`more: orch tasks list --cursor ${page.next_cursor}`)
  },
})

const cancel = defineOrchCommand({
  meta: { name: 'cancel', description: 'Cancel a queued or running task' },
  args: { ...base, ...idArg },
  examples: ['orch tasks cancel t_0mwueln3w00012hk9v2av'],
  async run({ args }) {
    const task = await serveClient(args).cancelTask<Task>(args.id)
    if (args.json) printJson(task)
    else printText(`${task.id} ${task.state}`)
  },
})

const wait = defineOrchCommand({
  meta: { name: 'wait', description: 'Wait until a task finishes and print it (exit 1 if it failed or was cancelled)' },
  args: { ...base, ...idArg, ...timeoutArg },
  examples: ['orch tasks wait t_0mwueln3w00012hk9v2av', 'orch tasks wait t_0mwueln3w00012hk9v2av --timeout 5m --json'],
  async run({ args }) {
    return finish(await waitFor(serveClient(args), args.id, parseTimeout(args.timeout)), args.json)
  },
})

const watch = defineOrchCommand({
  meta: { name: 'watch', description: 'Stream task events as they happen, until Ctrl-C' },
  args: {
    ...base,
    types: { type: 'string', valueHint: 'LIST', description: 'Event types: task, workflow, worker, scaling, backend (default task)' },
    since: { type: 'string', valueHint: 'EVENT_ID', description: 'Replay the events after this id first (Last-Event-ID)' },
  },
  examples: ['orch tasks watch', 'orch tasks watch --types task,worker --json', 'orch tasks watch --since 1732012345678'],
  async run({ args }) {
    const client = serveClient(args)
    const controller = new AbortController()
    process.once('SIGINT', () => {
      controller.abort()
      process.exit(130)
    })
    const types = args.types ?? 'task'
    let lastId = args.since
    // The stream ends when the server stops; reconnect from the last event seen while it restarts.
    for (let failures = 0; failures < 10 && !controller.signal.aborted; ) {
      try {
        for await (const event of client.events(types, lastId, controller.signal)) {
          failures = 0
          if (event.id !== undefined) lastId = event.id
          printText(
            args.json ? JSON.stringify({ id: Number(event.id), type: event.event, data: JSON.parse(event.data) }) : eventLine(event),
          )
        }
      } catch (error) {
        if (!(error instanceof OrchError) || error.code !== 'E_UNREACHABLE' || lastId === undefined) throw error
      }
      failures++
      await Bun.sleep(1000)
    }
    throw new OrchError(`lost the event stream of ${client.url}`, {
      code: 'E_UNREACHABLE',
      hint: 'is orch serve still running? (orch status)',
    })
  },
})

function submitBody(args: Record<string, any>): Record<string, unknown> {
  const type: string = args.type ?? 'generate'
  let payload: Record<string, unknown>
  if (args.payload !== undefined) payload = readPayload(args.payload)
  else if (args.prompt !== undefined) {
    const text: string = args.prompt
    payload = type === 'chat' ? { messages: [{ role: 'user', content: text }] } : type === 'embed' ? { input: text } : { prompt: text }
  } else
    throw new UsageError('give the work: --prompt TEXT or --payload JSON', { hint: 'orch tasks submit --model llama3.2 --prompt "Hello"' })
  const body: Record<string, unknown> = { type, payload }
  if (args.model !== undefined) body.model = args.model
  if (args.priority !== undefined) {
    const priority = Number(args.priority)
    if (!Number.isFinite(priority)) throw new UsageError(`--priority must be a number, got "${args.priority}"`)
    body.priority = priority
  }
  if (args.tenant !== undefined) body.tenant = args.tenant
  if (args.key !== undefined) body.idempotency_key = args.key
  return body
}

function readPayload(value: string): Record<string, unknown> {
  let text = value
  if (value.startsWith('@')) {
    const file = value.slice(1)
    try {
      text = readFileSync(file === '-' ? 0 : file, 'utf8')
    } catch (error) {
      throw new UsageError(`--payload ${value}: ${(error as Error).message}`)
    }
  }
  try {
    const parsed = JSON.parse(text)
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) return parsed
  } catch {
    // Reported below, with the shape expected.
  }
  throw new UsageError('--payload must be a JSON object (the Ollama request), or @file holding one', {
    hint: `orch tasks submit --type generate --payload '{"model":"llama3.2","prompt":"Hello"}'`,
  })
}

const progress = (line: string) => process.stderr.write(`${line}\n`)

/** The first long-poll is short, so what a task waits for is said at once; later ones refresh it now and then. */
const FIRST_SLICE_MS = 1000
const SLICE_MS = 30_000

/** A wait that Ctrl-C ended: the task as it was last seen, unfinished. */
interface Interrupted {
  interrupted: true
  id: string
  task: Task | undefined
}

/**
 * Long-poll in slices until the task finishes or `limitMs` passes, telling stderr what it waits for
 * whenever that changes. Ctrl-C (SIGINT) stops waiting and leaves the task as it is.
 */
async function waitFor(client: ServeClient, id: string, limitMs: number | undefined): Promise<Task | Interrupted> {
  const deadline = limitMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + limitMs
  const controller = new AbortController()
  process.removeAllListeners('SIGINT')
  process.once('SIGINT', () => controller.abort())
  let last: Task | undefined
  let said = ''
  for (let first = true; ; first = false) {
    const slice = Math.max(0, Math.min(first ? FIRST_SLICE_MS : SLICE_MS, deadline - Date.now()))
    let answer: TaskWait<Task>
    try {
      answer = await client.waitTask<Task>(id, slice, controller.signal)
    } catch (error) {
      if (!controller.signal.aborted) throw error
      const now = await latest(client, id, last)
      // Finished in the meantime: that is the answer after all.
      if (now && now.state !== 'queued' && now.state !== 'running') return now
      return { interrupted: true, id, task: now }
    }
    const { finished, task } = answer
    if (finished) return task
    last = task
    const now =
      task.state === 'queued'
        ? `queued: ${answer.waiting_for ?? 'waiting for its turn'}`
        : `${task.state} (attempt ${task.attempts} of ${task.max_attempts})`
    if (now !== said) progress(now)
    said = now
    if (Date.now() >= deadline) {
      throw new OrchError(`task ${id} is still ${task.state} after ${limitMs} ms`, {
        code: 'E_WAIT_TIMEOUT',
        hint: `orch tasks wait ${id}`,
      })
    }
  }
}

/** The task as it is now, for the message after Ctrl-C; what was last seen if the server is slow to say. */
async function latest(client: ServeClient, id: string, seen: Task | undefined): Promise<Task | undefined> {
  try {
    return await client.task<Task>(id, { signal: AbortSignal.timeout(2000) })
  } catch {
    return seen
  }
}

function finish(outcome: Task | Interrupted, json: boolean | undefined): number {
  if ('interrupted' in outcome) {
    const { id, task } = outcome
    const how = task ? `is still ${task.state}` : 'is left as it was (the server did not say how it is)'
    progress(`task ${id} ${how}; orch tasks get ${id} / orch tasks cancel ${id}`)
    if (json && task) printJson(task)
    return ExitCode.interrupted
  }
  const task = outcome
  if (json) printJson(task)
  else printText(task.state === 'done' ? resultText(task.result) : describe(task))
  return task.state === 'done' ? 0 : 1
}

/** `--timeout` in milliseconds: seconds, or a duration like 500ms, 30s, 5m, 1h30m (src/core/duration.ts). */
export function parseTimeout(text: string | undefined): number | undefined {
  if (text === undefined) return undefined
  const ms = parseDurationMs(text)
  if (ms === undefined || !(ms >= 0)) throw new UsageError(`--timeout must be a duration like 30s, 5m or 1h, got "${text}"`)
  return ms
}

function resultText(result: any): string {
  if (typeof result?.response === 'string') return result.response
  if (typeof result?.message?.content === 'string') return result.message.content
  if (Array.isArray(result?.embeddings))
    return `${result.embeddings.length} embedding(s) of ${result.embeddings[0]?.length ?? 0} dimensions`
  return JSON.stringify(result, null, 2)
}

const iso = (ms: number | null) => (ms === null ? '-' : new Date(ms).toISOString())

function describe(t: Task): string {
  const lines = [
    `id        ${t.id}`,
    `state     ${t.state}${t.fail_reason ? ` (${t.fail_reason})` : ''}, attempt ${t.attempts} of ${t.max_attempts}`,
    `task      ${t.type} on ${t.model ?? '-'}, tenant ${t.tenant}, priority ${t.priority}${t.idempotency_key ? `, key ${t.idempotency_key}` : ''}`,
    `created   ${iso(t.created_at)}`,
  ]
  if (t.started_at !== null) lines.push(`started   ${iso(t.started_at)}`)
  if (t.finished_at !== null) lines.push(`finished  ${iso(t.finished_at)} (${t.finished_at - t.created_at} ms after submission)`)
  if (t.error) lines.push(`error     ${t.error.code}: ${t.error.message}`)
  if (t.state === 'done') lines.push('result', resultText(t.result).replace(/^/gm, '  '))
  return lines.join('\n')
}

function table(tasks: Task[]): string {
  const rows = [['ID', 'STATE', 'TYPE', 'MODEL', 'TENANT', 'PRI', 'TRIES', 'CREATED']]
  for (const t of tasks) {
    rows.push([t.id, t.state, t.type, t.model ?? '-', t.tenant, String(t.priority), `${t.attempts}/${t.max_attempts}`, iso(t.created_at)])
  }
  return formatTable(rows, { trimEnd: true })
}

function eventLine(event: { id: string | undefined; event: string; data: string }): string {
  const data = JSON.parse(event.data)
  const at = new Date(typeof data.at === 'number' ? data.at : Date.now()).toISOString()
  if (event.event !== 'task') return `${at}  #${event.id}  ${event.event}  ${event.data}`
  return `${at}  #${event.id}  ${data.id}  ${String(data.change).padEnd(9)}  ${String(data.state).padEnd(9)}  ${data.type} ${data.model ?? ''}`
}

export default defineOrchCommand({
  meta: { name: 'tasks', description: 'Submit, inspect, cancel and watch durable tasks of a running orch serve' },
  subCommands: { submit, get, list, cancel, wait, watch },
  examples: [
    'orch tasks submit --model llama3.2 --prompt "Why is the sky blue?" --wait',
    'orch tasks list --state queued',
    'orch tasks watch',
    'orch tasks submit --url http://10.0.0.5:9097 --type embed --model nomic-embed-text --prompt "hello"',
  ],
})
