/**
 * Pools as an `orch serve` extension: the configured pools start in the background (the HTTP API does not
 * wait for model servers to come up), and their workers join the engine's scheduler as they turn healthy.
 * The supervisor is reachable as `deps.services.pools`.
 */
import { dirname } from 'node:path'
import { logger } from '../log.ts'
import type { Extension } from '../server/extensions.ts'
import { detectGpus } from './gpu.ts'
import { Supervisor } from './supervisor.ts'

export const poolsExtension: Extension = {
  name: 'pools',
  async start(deps) {
    if (deps.config.pools.length === 0) return { stop() {} }
    const home = dirname(deps.store.path)
    const detection = await detectGpus()
    const gpus = detection.available ? detection.gpus : []
    const supervisor = new Supervisor({ config: deps.config, home, store: deps.store, scheduler: deps.engine.scheduler, gpus })
    deps.services.pools = supervisor
    const starting = supervisor.start().catch((error: unknown) => logger('pool').error(`pools did not start: ${(error as Error).message}`))
    return {
      async stop() {
        await supervisor.stop()
        await starting
        if (deps.services.pools === supervisor) delete deps.services.pools
      },
    }
  },
}
