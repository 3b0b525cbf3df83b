/** `orch serve`: the HTTP control plane in the foreground (--detach: in the background, see daemon.ts). */
import pkg from '../package.json' with { type: 'json' }
import { UsageError } from '../src/errors.ts'
import { logger } from '../src/log.ts'
import { startServe } from '../src/server/serve.ts'
import { defineOrchCommand, globalArgs, printJson } from './_args.ts'
import { loadConfig } from './_config.ts'

export default defineOrchCommand({
  meta: { name: 'serve', description: 'Run the HTTP control plane: task queue, scheduler, Ollama- and OpenAI-compatible endpoints' },
  args: {
    ...globalArgs,
    host: { type: 'string', valueHint: 'ADDR', description: 'Listen address (server.host, default 127.0.0.1; others need server.token)' },
    port: { type: 'string', valueHint: 'PORT', description: 'Listen port (server.port, default 9097; 0 picks a free one)' },
  },
  examples: [
    'orch serve                                   # 127.0.0.1:9097, backends from orch.yaml (default: Ollama on :11434)',
    'orch serve --port 8080 --log-level debug',
    'ORCH_SERVER_TOKEN=s3cret orch serve --host 0.0.0.0',
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
    const server = await startServe({ config, home, version: pkg.version, ...(port === 0 ? { port: 0 } : {}) })
    if (args.json) printJson({ url: server.url, pid: process.pid, home })
    else logger().info(`ready: ${server.url}  (Ctrl-C stops; work in flight finishes within ${config.graceful_shutdown_timeout_ms} ms)`)
    await new Promise<void>((resolve) => {
      const shutdown = (signal: string) => {
        logger().info(`${signal}: stopping (in-flight work finishes, the rest stays queued for the next start)`)
        server.stop().then(resolve, resolve)
      }
      process.removeAllListeners('SIGINT')
      process.once('SIGINT', () => shutdown('SIGINT'))
      process.once('SIGTERM', () => shutdown('SIGTERM'))
    })
    return 0
  },
})
