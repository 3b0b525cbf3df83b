/**
 * `orch model-worker`: load one GGUF model with node-llama-cpp and serve Ollama's API for it. The
 * `llamacpp` pool profile starts these; one can also run by hand (docs/engine.md).
 */
import pkg from '../package.json' with { type: 'json' }
import { UsageError } from '../src/core/errors.ts'
import { logger } from '../src/core/log.ts'
import { defineOrchCommand, globalArgs, printJson } from './_args.ts'
import { runInBunMode } from './_bun-mode.ts'

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1'])

function count(flag: string, value: unknown, min: number, fallback: number): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!/^\d+$/.test(String(value)) || n < min) throw new UsageError(`--${flag} expects an integer >= ${min}, got "${String(value)}"`)
  return n
}

function autoOr(flag: string, value: unknown, min: number): 'auto' | number {
  if (value === undefined || value === 'auto') return 'auto'
  if (!/^\d+$/.test(String(value)) || Number(value) < min)
    throw new UsageError(`--${flag} expects "auto" or an integer >= ${min}, got "${String(value)}"`)
  return Number(value)
}

export default defineOrchCommand({
  meta: {
    name: 'model-worker',
    description: "Load a GGUF model with node-llama-cpp and serve Ollama's API for it (what llamacpp pools run)",
  },
  args: {
    ...globalArgs,
    model: { type: 'string', valueHint: 'FILE.gguf', description: 'The GGUF model file to load (required)' },
    port: { type: 'string', valueHint: 'N', description: 'Port to listen on, on 127.0.0.1 (0: any free port)', default: '11434' },
    host: {
      type: 'string',
      valueHint: 'ADDR',
      description: 'Loopback address to listen on: 127.0.0.1, ::1 or localhost',
      default: '127.0.0.1',
    },
    name: { type: 'string', valueHint: 'NAME', description: 'The model name clients use (default: the file name less .gguf)' },
    'gpu-layers': {
      type: 'string',
      valueHint: 'auto|N',
      description: 'Layers on the GPU: auto (as many as fit), 0 (CPU only) or N',
      default: 'auto',
    },
    threads: { type: 'string', valueHint: 'N', description: "CPU threads (0: the machine's math cores; on 2 cores use 1)", default: '0' },
    context: {
      type: 'string',
      valueHint: 'auto|N',
      description: "Tokens of context per request (auto: the model's own, as memory allows)",
      default: 'auto',
    },
    parallel: { type: 'string', valueHint: 'N', description: 'Requests generated for at once, batched in one context', default: '1' },
    'engine-path': {
      type: 'string',
      valueHint: 'DIR',
      description: 'Where node-llama-cpp is installed (DIR/node_modules/node-llama-cpp); default beside orch, then its own',
    },
  },
  examples: [
    'orch model-worker --model ./models/llama-3.2-1b-q4_k_m.gguf --port 11500',
    'orch model-worker --model tiny.gguf --port 0 --threads 1 --parallel 4 --json   # prints the port it took',
    'curl -s 127.0.0.1:11500/api/chat -d \'{"model":"llama-3.2-1b-q4_k_m","messages":[{"role":"user","content":"hi"}]}\'',
  ],
  async run({ args }) {
    const relaunched = await runInBunMode()
    if (relaunched !== undefined) return relaunched
    if (typeof args.model !== 'string' || args.model === '') throw new UsageError('--model FILE.gguf is required')
    const host = String(args.host)
    if (!LOOPBACK.has(host))
      throw new UsageError(`--host ${host}: orch model-worker listens on loopback only (it has no token)`, {
        hint: 'put orch serve in front of it (a llamacpp pool) to serve other machines, with server.token',
      })
    const port = count('port', args.port, 0, 11434)
    if (port > 65535) throw new UsageError(`--port expects 0-65535, got ${port}`)
    const { resolve } = await import('node:path')
    const { ggufName } = await import('../src/config/pools.ts')
    const { GgufError, readGguf } = await import('../src/engine/gguf.ts')
    const path = resolve(args.model)
    try {
      readGguf(path)
    } catch (err) {
      if (err instanceof GgufError) throw new UsageError(`${path}: ${err.message}`, { hint: 'give --model a .gguf model file' })
      throw err
    }
    const settings = {
      path,
      name: typeof args.name === 'string' && args.name !== '' ? args.name : ggufName(path),
      gpuLayers: autoOr('gpu-layers', args['gpu-layers'], 0),
      threads: count('threads', args.threads, 0, 0),
      contextSize: autoOr('context', args.context, 16),
      parallel: count('parallel', args.parallel, 1, 1),
    }
    const { loadNodeLlamaCpp } = await import('../src/engine/llama.ts')
    const engine = await loadNodeLlamaCpp(typeof args['engine-path'] === 'string' ? args['engine-path'] : undefined)
    const { LoadedModel } = await import('../src/engine/model.ts')
    const { startWorkerServer } = await import('../src/engine/server.ts')
    const log = logger()
    const model = LoadedModel.load(engine.module, settings)
    const server = startWorkerServer({ host, port, version: pkg.version, model })
    let loaded: Awaited<typeof model>
    try {
      loaded = await model
    } catch (err) {
      await server.stop()
      throw err
    }
    const facts = {
      url: server.url,
      port: server.port,
      pid: process.pid,
      model: settings.name,
      file: path,
      backend: loaded.backend,
      parallel: settings.parallel,
      context_per_request: loaded.contextPerRequest,
      load_ms: Math.round(loaded.loadNs / 1e6),
      engine: { version: engine.version, from: engine.from },
    }
    if (args.json) printJson(facts)
    else
      log.info(
        `ready: ${settings.name} on ${server.url} (${loaded.backend}, ${settings.parallel} at once, ${loaded.contextPerRequest} tokens each, loaded in ${facts.load_ms} ms)`,
      )
    await new Promise<void>((done) => {
      const shutdown = () => {
        server
          .stop()
          .then(() => loaded.close())
          .then(done, done)
      }
      process.removeAllListeners('SIGINT')
      process.once('SIGINT', shutdown)
      process.once('SIGTERM', shutdown)
    })
    return 0
  },
})
