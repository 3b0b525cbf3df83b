/** What a NAME on the `orch pool stop|restart|reset` command line names for the control channel. */
import type { ControlRequest } from './control.ts'

/** NAME as the control channel wants it: `POOL/WORKER`, or a bare name the supervisor resolves (pool first). */
export function controlTarget(name: string | undefined): Omit<ControlRequest, 'cmd'> {
  if (name === undefined) return {}
  const slash = name.indexOf('/')
  return slash >= 0 ? { pool: name.slice(0, slash), worker: name.slice(slash + 1) } : { name }
}
