/**
 * Lease owners: `${hostname}:${pid}:${runId}`. The host and pid let a starting process tell which `running`
 * tasks were left behind by a process that is gone, so it can requeue them without waiting for the lease.
 */
import { hostname } from 'node:os'
import { isAlive } from '../core/process.ts'

export interface OwnerParts {
  host: string
  pid: number
  runId: string
}

export function ownerId(runId: string): string {
  return `${hostname()}:${process.pid}:${runId}`
}

/** The parts of an owner made by `ownerId`; undefined for any other string. The run id may contain ':'. */
export function parseOwner(owner: string): OwnerParts | undefined {
  const match = /^([^:]*):(\d+):(.*)$/s.exec(owner)
  if (!match) return undefined
  return { host: match[1] ?? '', pid: Number(match[2]), runId: match[3] ?? '' }
}

/**
 * Whether the owner's process may still be running. Only a process on this host can be checked; for any
 * other host, or an owner not made by `ownerId`, the answer is "alive", and the lease expiry decides.
 */
export function isLocalOwnerAlive(owner: string): boolean {
  const parts = parseOwner(owner)
  if (!parts || parts.host !== hostname()) return true
  if (parts.pid === process.pid) return true
  // A zombie (exited, not yet reaped by its parent) runs nothing: its tasks are returned.
  return isAlive(parts.pid)
}
