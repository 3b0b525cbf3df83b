import { afterEach, describe, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { defaultConfig } from '../../src/config/schema.ts'
import { checkHome, checkPort } from '../../src/doctor/checks.ts'
import { gatherDisk, gatherHome, gatherPorts, probePort } from '../../src/doctor/run.ts'
import { openStore } from '../../src/store/db.ts'
import { tempDir } from '../helpers/cli.ts'

const cleanups: Array<() => void | Promise<void>> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup()
})

function dir(): string {
  const d = tempDir('orch-doctor-run-')
  cleanups.push(d.cleanup)
  return d.path
}

/** A TCP server on a free loopback port that answers every chunk with `reply` (or stays silent). */
async function tcpServer(reply: string | undefined): Promise<number> {
  const server: Server = createServer((socket) => {
    socket.on('data', () => {
      if (reply !== undefined) socket.write(reply)
    })
    socket.on('error', () => {})
  })
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
  cleanups.push(() => new Promise<void>((done) => server.close(() => done())))
  const address = server.address()
  if (!address || typeof address === 'string') throw new Error('no port')
  return address.port
}

describe('state directory edge', () => {
  test('a fresh directory is writable and has no database; a healthy state.db passes integrity_check', () => {
    const home = join(dir(), 'home')
    expect(checkHome(gatherHome(home)).map((f) => f.status)).toEqual(['ok', 'ok'])
    openStore(home).close()
    const facts = gatherHome(home)
    expect(facts.integrity).toEqual(['ok'])
    expect(checkHome(facts).map((f) => f.status)).toEqual(['ok', 'ok'])
  })

  test('a state directory that is a file is not writable; a state.db that is not a database is an error', () => {
    const base = dir()
    const file = join(base, 'not-a-dir')
    writeFileSync(file, 'x')
    expect(gatherHome(file).writable).toBe(false)
    writeFileSync(join(base, 'state.db'), 'this is not sqlite, not at all, not even a little bit'.repeat(100))
    const facts = gatherHome(base)
    expect(facts.dbError ?? facts.integrity?.join()).toBeDefined()
    expect(checkHome(facts)[1]?.status).toBe('error')
  })

  test('free disk is measured under the nearest existing directory', () => {
    const base = dir()
    const disk = gatherDisk(join(base, 'a', 'b'))
    expect(disk.path).toBe(base)
    expect(disk.freeBytes).toBeGreaterThan(0)
  })
})

describe('ports edge', () => {
  test('a free port, a busy one, and one held by the orch serve named in serve.pid', async () => {
    const busy = await tcpServer(undefined)
    expect((await probePort('127.0.0.1', busy)).state).toBe('busy')
    const home = dir()
    const config = { ...defaultConfig(), server: { ...defaultConfig().server, port: busy } }
    const [foreign] = await gatherPorts(config, home)
    expect(checkPort(foreign as NonNullable<typeof foreign>).status).toBe('error')
    const info = { pid: process.pid, url: `http://127.0.0.1:${busy}`, started_at: '', version: '', argv: [] }
    writeFileSync(join(home, 'serve.pid'), JSON.stringify(info))
    const [ours] = await gatherPorts(config, home)
    expect(ours?.orchPid).toBe(process.pid)
    expect(checkPort(ours as NonNullable<typeof ours>).status).toBe('ok')
  })
})
