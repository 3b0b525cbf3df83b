/** Lease owners (src/tasks/owner.ts): host:pid:run ids, and which of them are known to be gone. */
import { describe, expect, test } from 'bun:test'
import { isLocalOwnerAlive, ownerId, parseOwner } from '../../src/tasks/owner.ts'

describe('owners', () => {
  test('ownerId is host:pid:run and parses back, run ids may hold colons', () => {
    expect(parseOwner(ownerId('a:b'))).toEqual({ host: parseOwner(ownerId('x'))?.host as string, pid: process.pid, runId: 'a:b' })
    expect(parseOwner('nonsense')).toBeUndefined()
  })

  test('isLocalOwnerAlive: this process alive, a gone pid dead, other hosts and strangers presumed alive', async () => {
    const host = parseOwner(ownerId('x'))?.host as string
    const child = Bun.spawn([process.execPath, '-e', ''], { stdout: 'ignore' })
    await child.exited
    expect(isLocalOwnerAlive(ownerId('me'))).toBe(true)
    expect(isLocalOwnerAlive(`${host}:${child.pid}:r`)).toBe(false)
    expect(isLocalOwnerAlive(`${host}:1:r`)).toBe(true) // init exists; EPERM still means alive
    expect(isLocalOwnerAlive(`not-${host}:${child.pid}:r`)).toBe(true)
    expect(isLocalOwnerAlive('worker-7')).toBe(true)
  })
})
