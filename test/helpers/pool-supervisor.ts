/**
 * Runs a pool Supervisor in its own process, for tests that SIGKILL the supervising process:
 *   bun test/helpers/pool-supervisor.ts HOME CONFIG_JSON [WATCHDOG_PARENT_PID]
 * Prints one JSON line `{"pids":[...]}` (the workers' process groups) once every worker has settled, then
 * runs until killed.
 */
import * as v from 'valibot'
import { OrchConfigSchema } from '../../src/config/schema.ts'
import { Supervisor } from '../../src/pool/supervisor.ts'
import { openStore } from '../../src/store/db.ts'

const [home, configJson, parent] = Bun.argv.slice(2)
if (!home || !configJson) throw new Error('usage: pool-supervisor.ts HOME CONFIG_JSON [WATCHDOG_PARENT_PID]')
const config = v.parse(OrchConfigSchema, JSON.parse(configJson))
const store = openStore(home)
const supervisor = new Supervisor({
  config,
  home,
  store,
  ...(parent ? { watchdogParent: Number(parent) } : {}),
  timing: { probeInitialMs: 100, restartInitialMs: 100 },
})
await supervisor.start()
console.log(JSON.stringify({ pids: supervisor.workers.map((w) => w.pid) }))
setInterval(() => {}, 60_000)
