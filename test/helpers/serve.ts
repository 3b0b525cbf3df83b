/**
 * Start a real `orch serve` (in process, real Bun.serve on a free loopback port, real sqlite in a temp
 * ORCH_HOME) in front of fake Ollama servers. `stop()` shuts everything down and removes the temp dir.
 */
import { defaultConfig } from '../../src/config/schema.ts'
import { configureLogging } from '../../src/core/log.ts'
import { type RunningServer, startServe } from '../../src/server/serve.ts'
import { tempDir } from './cli.ts'
import { type FakeBehaviour, type FakeServer, startFakeOllama } from './fake-ollama.ts'

export type Config = ReturnType<typeof defaultConfig>

export interface TestServe {
  server: RunningServer
  url: string
  home: string
  fakes: FakeServer[]
  config: Config
  /** fetch against the server, with the token when one is configured. */
  fetch(path: string, init?: RequestInit): Promise<Response>
  stop(): Promise<void>
}

export async function startTestServe(
  options: { fakes?: Array<Partial<FakeBehaviour>>; tweak?: (c: Config) => void; concurrency?: number } = {},
): Promise<TestServe> {
  configureLogging({ level: 'error' })
  const fakes = await Promise.all((options.fakes ?? [{}]).map((b) => startFakeOllama(b)))
  const dir = tempDir('orch-serve-')
  const config = defaultConfig()
  config.backends = fakes.map((f, i) => ({ name: `fake${i}`, type: 'ollama' as const, url: f.url, concurrency: options.concurrency ?? 4 }))
  config.infrastructure_system.llm_orchestration.caching.cache_backend = 'memory'
  config.infrastructure_system.llm_orchestration.batching.batch_interval_seconds = 0.01
  config.tasks.synchronous = 'NORMAL'
  // Samples go to the temp home, never into the working tree.
  config.infrastructure_system.performance_monitoring.export_path = `${dir.path}/performance_logs`
  config.graceful_shutdown_timeout_ms = 500
  options.tweak?.(config)
  const server = await startServe({ config, home: dir.path, version: '0.0.0-test', port: 0, healthIntervalMs: 0 })
  return {
    server,
    url: server.url,
    home: dir.path,
    fakes,
    config,
    fetch: (path, init = {}) => {
      const headers = new Headers(init.headers)
      if (config.server.token && !headers.has('authorization')) headers.set('authorization', `Bearer ${config.server.token}`)
      return fetch(`${server.url}${path}`, { ...init, headers })
    },
    async stop() {
      await server.stop(200)
      for (const fake of fakes) await fake.stop()
      dir.cleanup()
    },
  }
}

/** Two servers for tests that must hold with and without server.token: the default config, and `token` set. */
export async function startOpenAndGuarded(token: string): Promise<{ open: TestServe; guarded: TestServe; stop(): Promise<void> }> {
  const [open, guarded] = await Promise.all([startTestServe(), startTestServe({ tweak: (c) => (c.server.token = token) })])
  return {
    open,
    guarded,
    async stop() {
      await open.stop()
      await guarded.stop()
    },
  }
}
