/**
 * `orch serve`: the HTTP control plane in the foreground, or in the background with --detach (src/daemon/).
 * Either way the server records itself in its state directory once it listens (pidfile.ts), so `orch
 * status` and `orch stop` find it, and a second server on the same state directory is refused.
 */
import { resolve } from 'node:path'
import pkg from '../package.json' with { type: 'json' }
import { OrchError, UsageError } from '../src/core/errors.ts'
import { logger } from '../src/core/log.ts'
import {
  alreadyRunning,
  type PidInfo,
  recordServe,
  releasePidFile,
  type ServeMode,
  serveRecords,
  writePidFile,
} from '../src/daemon/pidfile.ts'
import { portTakenHint, probeOrch } from '../src/daemon/port-hint.ts'
import { checkBind, startServe } from '../src/server/serve.ts'
import { defineOrchCommand, globalArgs, printJson, printText } from './_args.ts'
import { loadConfig } from './_config.ts'

const serveArgs = {
  ...globalArgs,
  host: { type: 'string', valueHint: 'ADDR', description: 'Listen address (server.host, default 127.0.0.1; others need server.token)' },
  port: { type: 'string', valueHint: 'PORT', description: 'Listen port (server.port, default 9097; 0 picks a free one)' },
  detach: {
    type: 'boolean',
    description: 'Run in the background, logging to $ORCH_HOME/logs/serve.log (orch status, logs, stop)',
  },
  'allow-second': {
    type: 'boolean',
    description: 'Start although an orch serve already runs on this state directory (they share its task queue; not with pools)',
  },
  tasks: {
    type: 'boolean',
    default: true,
    negativeDescription: 'Run no durable task here: with Redis, orch worker runs them (docs/scaling.md); leases still recovered',
    description: 'Run durable tasks on this machine (default; --no-tasks for a control plane only)',
  },
  'pid-file': {
    type: 'string',
    valueHint: 'FILE',
    description: 'Also write FILE (JSON: pid, url, started_at, mode) once listening, for process supervisors; removed on stop',
  },
  // Set by --detach on the server it starts, so its record says "detached"; not for people.
  'detached-child': { type: 'boolean', hidden: true, description: 'Internal: this server was started by serve --detach' },
} as const

/** The background server's arguments: the same flags, minus those the parent handles (--detach, --json, --home). */
function childArgs(args: Record<string, unknown>): string[] {
  const out = ['serve']
  for (const name of ['config', 'env', 'log-level', 'host', 'port'] as const) {
    const value = args[name]
    if (typeof value === 'string') out.push(`--${name}`, value)
  }
  if (typeof args['pid-file'] === 'string') out.push('--pid-file', resolve(args['pid-file']))
  if (args.debug === true) out.push('--debug')
  if (args.tasks === false) out.push('--no-tasks')
  return out
}

/** A port that is taken gets a hint that says who holds it; other listen failures get theirs. */
async function explainListen(error: unknown, host: string, port: number, home: string, stopCommand: string): Promise<unknown> {
  if (!(error instanceof OrchError) || error.code !== 'E_LISTEN') return error
  const code = (error.cause as { code?: unknown } | undefined)?.code
  let hint: string
  if (code === 'EADDRINUSE') {
    const records = serveRecords(home).live
    const orchVersion = records.length > 0 ? undefined : await probeOrch(host, port)
    hint = portTakenHint({ port, records, stopCommand, ...(orchVersion !== undefined ? { orchVersion } : {}) })
  } else if (code === 'EADDRNOTAVAIL') {
    hint = `${host} is not an address of this machine: set --host (server.host) to one it has, e.g. 127.0.0.1 or 0.0.0.0`
  } else if (code === 'EACCES') {
    hint = `port ${port} needs privileges on this machine: choose --port 1024 or above (server.port)`
  } else {
    hint = 'check --host and --port (server.host, server.port)'
  }
  return new OrchError(error.message, { code: 'E_LISTEN', hint, cause: error.cause, details: { host, port } })
}

export default defineOrchCommand({
  meta: { name: 'serve', description: 'Run the HTTP control plane: task queue, scheduler, Ollama- and OpenAI-compatible endpoints' },
  args: serveArgs,
  examples: [
    'orch serve                                   # 127.0.0.1:9097, backends from orch.yaml (default: Ollama on :11434)',
    'orch serve --port 8080 --log-level debug',
    'ORCH_SERVER_TOKEN=s3cret orch serve --host 0.0.0.0',
    'orch serve --detach && orch status           # in the background; orch logs -f, orch stop',
    'curl -s localhost:9097/api/chat -d \'{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}\'',
  ],
  async run({ args }) {
    const port = args.port === undefined ? undefined : Number(args.port)
    if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) {
      throw new UsageError(`--port: expected an integer 0-65535, got "${args.port}"`)
    }
    const overrides: Record<string, unknown> = {}
    if (args.host) overrides['server.host'] = args.host
    if (port !== undefined && port > 0) overrides['server.port'] = port
    const { config, home } = loadConfig(args, overrides)
    const allowSecond = args['allow-second'] === true
    const stopCommand = args.home ? `orch stop --home ${home}` : 'orch stop'
    if (allowSecond && config.pools.length > 0) {
      throw new UsageError('--allow-second: not with pools configured; a second orch serve would start a second copy of every worker', {
        hint: `stop the running server (${stopCommand}), or give the second one its own --home`,
      })
    }
    const running = serveRecords(home).live[0]
    if (running && !allowSecond) throw alreadyRunning(running, stopCommand)
    if (args.detach) {
      // Refused here rather than in the background, where it would only reach the log.
      checkBind(config.server.host, config.server.token)
      const { detach } = await import('../src/daemon/daemon.ts')
      const started = await detach(childArgs(args), home, { allowSecond })
      if (args.json) printJson(started)
      else printText(`orch serve running in the background: ${started.url} (pid ${started.pid}, logs: ${started.log_file})`)
      return 0
    }
    const mode: ServeMode = args['detached-child'] ? 'detached' : 'foreground'
    const listenPort = port === 0 ? 0 : config.server.port
    const runTasks = args.tasks !== false
    const server = await startServe({ config, home, version: pkg.version, runTasks, ...(port === 0 ? { port: 0 } : {}) }).catch(
      async (error: unknown) => {
        throw await explainListen(error, config.server.host, listenPort, home, stopCommand)
      },
    )
    const info: PidInfo = {
      pid: process.pid,
      url: server.url,
      started_at: new Date().toISOString(),
      version: pkg.version,
      argv: process.argv.slice(2),
      mode,
      home,
    }
    const files: string[] = []
    try {
      files.push(recordServe(home, info, allowSecond))
      const pidFile = args['pid-file'] ? resolve(args['pid-file']) : undefined
      if (pidFile && !files.includes(pidFile)) {
        writePidFile(pidFile, info)
        files.push(pidFile)
      }
    } catch (error) {
      for (const file of files) releasePidFile(file)
      await server.stop()
      throw error
    }
    const stopHow = mode === 'foreground' ? `Ctrl-C or \`${stopCommand}\` stops` : `\`${stopCommand}\` or SIGTERM stops`
    if (args.json) printJson({ url: server.url, pid: process.pid, home, mode, pid_file: files[0] })
    else logger().info(`ready: ${server.url}  (${stopHow}; work in flight finishes within ${config.graceful_shutdown_timeout_ms} ms)`)
    await new Promise<void>((resolve) => {
      const shutdown = (signal: string) => {
        logger().info(`${signal}: stopping (in-flight work finishes, the rest stays queued for the next start)`)
        server.stop().then(resolve, resolve)
      }
      process.removeAllListeners('SIGINT')
      process.once('SIGINT', () => shutdown('SIGINT'))
      process.once('SIGTERM', () => shutdown('SIGTERM'))
      // A closed terminal: stop as cleanly as for Ctrl-C, so the record does not outlive the server.
      process.once('SIGHUP', () => shutdown('SIGHUP'))
    })
    for (const file of files) releasePidFile(file)
    logger().info(`stopped (pid ${process.pid})`)
    return 0
  },
})
