/** `orch serve`: the HTTP control plane in the foreground, or in the background with --detach (src/daemon/). */
import { resolve } from 'node:path'
import pkg from '../package.json' with { type: 'json' }
import { releasePidFile, writePidFile } from '../src/daemon/pidfile.ts'
import { UsageError } from '../src/errors.ts'
import { logger } from '../src/log.ts'
import { checkBind, startServe } from '../src/server/serve.ts'
import { defineOrchCommand, globalArgs, printJson, printText } from './_args.ts'
import { loadConfig } from './_config.ts'

const serveArgs = {
  ...globalArgs,
  host: { type: 'string', valueHint: 'ADDR', description: 'Listen address (server.host, default 127.0.0.1; others need server.token)' },
  port: { type: 'string', valueHint: 'PORT', description: 'Listen port (server.port, default 9097; 0 picks a free one)' },
  detach: {
    type: 'boolean',
    description: 'Run in the background: pid file $ORCH_HOME/serve.pid, log $ORCH_HOME/logs/serve.log (orch status, logs, stop)',
  },
  'pid-file': {
    type: 'string',
    valueHint: 'FILE',
    description: 'Write FILE (JSON: pid, url, started_at) once listening, remove it on stop; --detach uses $ORCH_HOME/serve.pid',
  },
} as const

/** The background server's arguments: the same flags, minus those the parent handles (--detach, --json, --home). */
function childArgs(args: Record<string, unknown>): string[] {
  const out = ['serve']
  for (const name of ['config', 'env', 'log-level', 'host', 'port'] as const) {
    const value = args[name]
    if (typeof value === 'string') out.push(`--${name}`, value)
  }
  if (args.debug === true) out.push('--debug')
  return out
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
    if (args.detach) {
      if (args['pid-file']) throw new UsageError('--pid-file: not with --detach, which always uses $ORCH_HOME/serve.pid')
      // Refused here rather than in the background, where it would only reach the log.
      checkBind(config.server.host, config.server.token)
      const { detach } = await import('../src/daemon/daemon.ts')
      const started = await detach(childArgs(args), home)
      if (args.json) printJson(started)
      else printText(`orch serve running in the background: ${started.url} (pid ${started.pid}, logs: ${started.log_file})`)
      return 0
    }
    const server = await startServe({ config, home, version: pkg.version, ...(port === 0 ? { port: 0 } : {}) })
    const pidFile = args['pid-file'] ? resolve(args['pid-file']) : undefined
    if (pidFile) {
      const info = {
        pid: process.pid,
        url: server.url,
        started_at: new Date().toISOString(),
        version: pkg.version,
        argv: process.argv.slice(2),
      }
      try {
        writePidFile(pidFile, info)
      } catch (error) {
        await server.stop()
        throw error
      }
    }
    const stopHow = pidFile ? '`orch stop` or SIGTERM stops' : 'Ctrl-C stops'
    if (args.json) printJson({ url: server.url, pid: process.pid, home })
    else logger().info(`ready: ${server.url}  (${stopHow}; work in flight finishes within ${config.graceful_shutdown_timeout_ms} ms)`)
    await new Promise<void>((resolve) => {
      const shutdown = (signal: string) => {
        logger().info(`${signal}: stopping (in-flight work finishes, the rest stays queued for the next start)`)
        server.stop().then(resolve, resolve)
      }
      process.removeAllListeners('SIGINT')
      process.once('SIGINT', () => shutdown('SIGINT'))
      process.once('SIGTERM', () => shutdown('SIGTERM'))
    })
    if (pidFile) {
      releasePidFile(pidFile)
      logger().info(`stopped (pid ${process.pid})`)
    }
    return 0
  },
})
