/** Whether another process is alive: one answer for serve records, pool workers and their owners. */
import { afterEach, expect, test } from 'bun:test'
import { existsSync } from 'node:fs'
import { isAlive, procStat, readCmdline } from '../../src/core/process.ts'

const parents: Array<{ kill: (signal?: number) => void }> = []
afterEach(() => {
  for (const parent of parents.splice(0)) parent.kill(9)
})

/** A child that has exited but that its parent (a `sleep` that never waits) does not reap: a zombie. */
async function zombie(): Promise<number> {
  const parent = Bun.spawn(['sh', '-c', 'sleep 0.1 & echo $!; exec sleep 30'], { stdout: 'pipe' })
  parents.push(parent)
  const reader = parent.stdout.getReader()
  const { value } = await reader.read()
  reader.releaseLock()
  const pid = Number(new TextDecoder().decode(value).trim())
  for (let i = 0; i < 100 && procStat(pid)?.state !== 'Z'; i++) await Bun.sleep(20)
  return pid
}

test.skipIf(!existsSync('/proc/self/stat'))('a zombie is not alive, though signal 0 still reaches it', async () => {
  const pid = await zombie()
  expect(procStat(pid)?.state).toBe('Z')
  expect(() => process.kill(pid, 0)).not.toThrow()
  expect(isAlive(pid)).toBe(false)
})

test('this process is alive; a pid nobody has is not', () => {
  expect(isAlive(process.pid)).toBe(true)
  expect(isAlive(3_999_999)).toBe(false)
})

test.skipIf(!existsSync('/proc/self/stat'))(
  'procStat and readCmdline read /proc: state, group, argv with empty arguments kept',
  async () => {
    const argv = [process.execPath, '-e', 'setTimeout(() => {}, 30000)', '', 'last']
    const child = Bun.spawn(argv, { stdout: 'ignore', stderr: 'ignore' })
    parents.push(child)
    for (let i = 0; i < 100 && readCmdline(child.pid)?.at(-1) !== 'last'; i++) await Bun.sleep(10)
    expect(readCmdline(child.pid)).toEqual(argv)
    expect(procStat(child.pid)).toMatchObject({ state: expect.stringMatching(/^[RSD]$/), pgrp: expect.any(Number) })
    expect(procStat(3_999_999)).toBeUndefined()
    expect(readCmdline(3_999_999)).toBeUndefined()
  },
)
