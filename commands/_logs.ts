/** Showing a service's log, for `orch logs` and `orch pool logs`: the tail, then with --follow what is appended. */
import { existsSync } from 'node:fs'
import { OrchError, UsageError } from '../src/core/errors.ts'
import { followFile, listServices, readTail, SERVE_SERVICE, serviceLogPath } from '../src/daemon/logfile.ts'
import { daemonState } from '../src/daemon/pidfile.ts'
import { printJson, printText } from './_args.ts'

export const DEFAULT_TAIL = 100

function parseTail(text: string | undefined): number {
  if (text === undefined) return DEFAULT_TAIL
  if (text === 'all') return Number.MAX_SAFE_INTEGER
  const n = Number(text)
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n))
    throw new UsageError(`--tail: expected a number of lines or "all", got "${text}"`)
  return n
}

export interface ShowLogOptions {
  tail?: string | undefined
  follow?: boolean | undefined
  json?: boolean | undefined
}

/** Print a service's log tail, and with `follow` what is appended, until Ctrl-C (`orch pool logs` too). */
export async function showLog(home: string, service: string, args: ShowLogOptions): Promise<number> {
  const count = parseTail(args.tail)
  const available = listServices(home)
  const file = serviceLogPath(home, service)
  if (!file || (service !== SERVE_SERVICE && !available.includes(service))) {
    throw new UsageError(`--service: no log named "${service}" under ${home}/logs`, {
      code: 'E_NO_SERVICE',
      hint: available.length > 0 ? `available: ${available.join(', ')}` : 'no logs yet: `orch serve --detach` writes logs/serve.log',
      details: { available },
    })
  }
  const exists = existsSync(file)
  // A server in the foreground logs to its terminal: serve.log, if any, is from earlier --detach runs.
  const running = service === SERVE_SERVICE ? daemonState(home) : undefined
  const foreground = running?.running && running.info.mode === 'foreground' ? running.info : undefined
  const elsewhere = foreground ? `orch serve (pid ${foreground.pid}) runs in the foreground and logs to its terminal` : undefined
  if (!exists && !args.follow) {
    throw new OrchError(`no log yet at ${file}${elsewhere ? `; ${elsewhere}` : ''}`, {
      code: 'E_NO_LOG',
      hint: '`orch serve --detach` writes it; a foreground `orch serve` logs to the terminal',
    })
  }
  if (elsewhere) process.stderr.write(`note: ${elsewhere}; ${file} holds the logs of earlier background runs\n`)
  const tail = exists ? readTail(file, count) : { lines: [], end: 0 }
  if (args.json && !args.follow) {
    printJson({ service, file, lines: tail.lines })
    return 0
  }
  const print = (lines: string[]) => {
    if (lines.length === 0) return
    printText(args.json ? lines.map((line) => JSON.stringify({ service, line })).join('\n') : lines.join('\n'))
  }
  print(tail.lines)
  if (!args.follow) return 0
  // Ctrl-C is how following ends: a normal exit (0), not an interruption.
  const stop = new AbortController()
  process.removeAllListeners('SIGINT')
  process.once('SIGINT', () => stop.abort())
  process.once('SIGTERM', () => stop.abort())
  await followFile(file, { from: tail.end, signal: stop.signal, onLines: print })
  return 0
}
