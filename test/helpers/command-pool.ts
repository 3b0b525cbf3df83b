/**
 * A pool of real worker processes for tests that need one: `gen`, two `command` workers running
 * test/helpers/model-server.ts (Ollama's API, model `test-model`), with fast heartbeats so a killed worker
 * is noticed within a second.
 */
import { expect } from 'bun:test'
import { join } from 'node:path'
import type { OrchConfig } from '../../src/config/schema.ts'
import { validateData } from '../../src/config/validate.ts'

const SERVER = join(import.meta.dir, 'model-server.ts')

/** The validated config of that pool: take its `pools` and `heartbeat`. */
export function twoWorkerPool(): OrchConfig {
  const { config, issues } = validateData({
    heartbeat: { ping_interval_ms: 200, timeout_ms: 1000, max_missed_heartbeats: 3 },
    pools: [
      {
        name: 'gen',
        profile: 'command',
        api: 'ollama',
        models: ['test-model'],
        pool_size: 2,
        command: [process.execPath, SERVER, '--port', '{port}'],
      },
    ],
  })
  expect(issues).toEqual([])
  return config as OrchConfig
}
