/**
 * The supervisor's local control channel: a unix socket at `$ORCH_HOME/run/pool.sock` (mode 0600), one JSON
 * request and one JSON reply per connection, each a line. `orch pool stop|restart|reset` talk to whichever
 * supervisor runs with that ORCH_HOME (`orch pool start` or `orch serve`). A socket left by a dead
 * supervisor is removed at start; one a live supervisor answers on is left alone.
 */
import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs'
import { controlSocketPath, runDir } from '../core/home.ts'
import type { Worker } from './worker.ts'

/** What the control channel asks of the supervisor that serves it (the Supervisor is one). */
export interface PoolControl {
  select(target: { pool?: string | undefined; worker?: string | undefined; name?: string | undefined }): Worker[]
  stopWorkers(workers: Worker[]): Promise<void>
  restartWorkers(workers: Worker[]): Promise<void>
  resetWorkers(workers: Worker[]): Promise<Worker[]>
}

/** A control command named no pool or worker this supervisor runs. */
export class TargetError extends Error {
  constructor(
    message: string,
    readonly known: { pools: string[]; workers: string[] },
  ) {
    super(message)
  }
}

export const CONTROL_COMMANDS = ['stop', 'restart', 'reset', 'status'] as const
export type ControlCommand = (typeof CONTROL_COMMANDS)[number]

export interface ControlRequest {
  cmd: ControlCommand
  pool?: string
  worker?: string
  /** A pool name, or else a worker id. */
  name?: string
}

export interface ControlWorker {
  pool: string
  id: string
  pid: number | null
  port: number | null
  state: string
  restarts: number
}

export type ControlReply =
  | { ok: true; cmd: ControlCommand; message: string; workers: ControlWorker[] }
  | { ok: false; error: string; known?: { pools: string[]; workers: string[] } }

const describe = (w: Worker): ControlWorker => ({
  pool: w.settings.pool.name,
  id: w.id,
  pid: w.pid ?? null,
  port: w.port ?? null,
  state: w.state,
  restarts: w.restarts,
})

function parseRequest(text: string): ControlRequest | undefined {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null) return undefined
  const { cmd, ...names } = value as Record<string, unknown>
  if (!CONTROL_COMMANDS.includes(cmd as ControlCommand)) return undefined
  const request: ControlRequest = { cmd: cmd as ControlCommand }
  for (const key of ['pool', 'worker', 'name'] as const) {
    const given = names[key]
    if (given === undefined) continue
    if (typeof given !== 'string') return undefined
    request[key] = given
  }
  return request
}

/** Carry out one request; never throws. */
export async function handleControl(supervisor: PoolControl, text: string): Promise<ControlReply> {
  const request = parseRequest(text)
  if (!request) return { ok: false, error: `bad request: expected {"cmd": ${CONTROL_COMMANDS.join('|')}, "pool"?, "worker"?, "name"?}` }
  try {
    const targets = supervisor.select(request)
    const ids = () => targets.map((w) => w.id).join(', ') || 'none'
    let message: string
    if (request.cmd === 'stop') {
      await supervisor.stopWorkers(targets)
      message = `stopped ${ids()}`
    } else if (request.cmd === 'restart') {
      await supervisor.restartWorkers(targets)
      message = `restarted ${ids()}`
    } else if (request.cmd === 'reset') {
      const reset = await supervisor.resetWorkers(targets)
      message = reset.length > 0 ? `reset ${reset.map((w) => w.id).join(', ')}` : 'no failed worker to reset'
    } else message = `${targets.length} worker(s)`
    return { ok: true, cmd: request.cmd, message, workers: targets.map(describe) }
  } catch (error) {
    if (error instanceof TargetError) return { ok: false, error: error.message, known: error.known }
    return { ok: false, error: (error as Error).message }
  }
}

/** Send one request to the supervisor on `path`; rejects when none answers. */
export async function sendControl(path: string, request: ControlRequest, timeoutMs: number): Promise<ControlReply> {
  let text = ''
  const decoder = new TextDecoder()
  const { promise, resolve, reject } = Promise.withResolvers<ControlReply>()
  const finish = () => {
    try {
      resolve(JSON.parse(text) as ControlReply)
    } catch {
      reject(new Error(`no reply from the supervisor on ${path}`))
    }
  }
  const socket = await Bun.connect({
    unix: path,
    socket: {
      data(_s, chunk) {
        text += decoder.decode(chunk, { stream: true })
      },
      close: finish,
      end: finish,
      error(_s, error) {
        reject(error)
      },
    },
  })
  socket.write(`${JSON.stringify(request)}\n`)
  const timer = setTimeout(() => {
    reject(new Error(`the supervisor did not answer within ${timeoutMs} ms`))
    socket.end()
  }, timeoutMs)
  try {
    return await promise
  } finally {
    clearTimeout(timer)
  }
}

export interface ControlServer {
  path: string
  close(): void
}

/** Listen on `$ORCH_HOME/run/pool.sock`; undefined (and why) when a live supervisor already does. */
export async function listenControl(
  home: string,
  handle: (text: string) => Promise<ControlReply>,
): Promise<{ server: ControlServer } | { reason: string }> {
  const path = controlSocketPath(home)
  mkdirSync(runDir(home), { recursive: true, mode: 0o700 })
  if (existsSync(path)) {
    const live = await sendControl(path, { cmd: 'status' }, 2000).then(
      () => true,
      () => false,
    )
    if (live) return { reason: `another supervisor answers on ${path}` }
    unlinkSync(path)
  }
  const listener = Bun.listen<{ text: string }>({
    unix: path,
    socket: {
      open(socket) {
        socket.data = { text: '' }
      },
      data(socket, chunk) {
        socket.data.text += chunk.toString()
        const newline = socket.data.text.indexOf('\n')
        if (newline < 0) return
        const line = socket.data.text.slice(0, newline)
        socket.data.text = ''
        void handle(line).then((reply) => socket.end(`${JSON.stringify(reply)}\n`))
      },
    },
  })
  chmodSync(path, 0o600)
  return {
    server: {
      path,
      close() {
        listener.stop(true)
        try {
          unlinkSync(path)
        } catch {
          // Already gone.
        }
      },
    },
  }
}
