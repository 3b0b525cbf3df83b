import { afterAll, describe, expect, test } from 'bun:test'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { listServices, readSince, readTail, rotateLog, serveLogPath, serviceLogPath } from '../../src/daemon/logfile.ts'
import { daemonState, isAlive, pidFilePath, readPidFile, releasePidFile, writePidFile } from '../../src/daemon/pidfile.ts'
import { tempDir } from '../helpers/cli.ts'

const tmp = tempDir('orch-daemon-unit-')
afterAll(() => tmp.cleanup())
let n = 0
const fresh = () => {
  const dir = join(tmp.path, String(n++))
  mkdirSync(join(dir, 'logs'), { recursive: true })
  return dir
}

describe('log files', () => {
  test('readTail: the last N lines, with or without a final newline, across chunk boundaries', () => {
    const file = join(fresh(), 'a.log')
    const lines = Array.from({ length: 20_000 }, (_, i) => `line ${i} ${'x'.repeat(i % 7)}`)
    writeFileSync(file, `${lines.join('\n')}\n`)
    expect(readTail(file, 3).lines).toEqual(lines.slice(-3))
    expect(readTail(file, 15_000).lines).toEqual(lines.slice(-15_000))
    expect(readTail(file, 0).lines).toEqual([])
    writeFileSync(file, 'a\nb\nc')
    expect(readTail(file, 2)).toEqual({ lines: ['b', 'c'], end: 5 })
    expect(readTail(file, 10).lines).toEqual(['a', 'b', 'c'])
    writeFileSync(file, '')
    expect(readTail(file, 5).lines).toEqual([])
  })

  test('readSince: only what was written after the offset, blank lines skipped', () => {
    const file = join(fresh(), 'b.log')
    writeFileSync(file, 'before\nafter 1\n\nafter 2\n')
    expect(readSince(file, 7, 10)).toEqual(['after 1', 'after 2'])
    expect(readSince(file, 7, 1)).toEqual(['after 2'])
    expect(readSince(join(tmp.path, 'missing.log'), 0, 5)).toEqual([])
  })

  test('rotateLog: past the limit, serve.log becomes .1 and older ones shift, keeping 3', () => {
    const home = fresh()
    const file = serveLogPath(home)
    for (const [suffix, text] of [
      ['', 'current'],
      ['.1', 'one'],
      ['.2', 'two'],
      ['.3', 'three'],
    ] as const)
      writeFileSync(`${file}${suffix}`, text)
    expect(rotateLog(file, 100)).toBe(false)
    expect(rotateLog(file, 3)).toBe(true)
    expect(existsSync(file)).toBe(false)
    expect(['.1', '.2', '.3'].map((s) => readFileSync(`${file}${s}`, 'utf8'))).toEqual(['current', 'one', 'two'])
    expect(existsSync(`${file}.4`)).toBe(false)
    expect(rotateLog(file, 3)).toBe(false)
  })

  test('services: serve and pool/worker names that have a log; names cannot leave the logs folder', () => {
    const home = fresh()
    expect(listServices(home)).toEqual([])
    writeFileSync(serveLogPath(home), '')
    mkdirSync(join(home, 'logs/gpu'))
    writeFileSync(join(home, 'logs/gpu/w1.log'), '')
    writeFileSync(join(home, 'logs/gpu/notes.txt'), '')
    expect(listServices(home)).toEqual(['serve', 'gpu/w1'])
    expect(serviceLogPath(home, 'gpu/w1')).toBe(join(home, 'logs/gpu/w1.log'))
    for (const bad of ['../x', 'gpu/..', 'a/b/c', '/etc/passwd', 'gpu']) expect(serviceLogPath(home, bad)).toBeUndefined()
  })
})

describe('pid file', () => {
  const info = (pid: number) => ({ pid, url: 'http://127.0.0.1:1', started_at: new Date().toISOString(), version: '0', argv: [] })

  test('written exclusively; a live owner refuses a second writer, a stale one is replaced', () => {
    const file = pidFilePath(fresh())
    writePidFile(file, info(process.pid))
    expect(readPidFile(file)?.pid).toBe(process.pid)
    // Another live process (this one's parent) holds it: refused, left alone.
    writeFileSync(file, JSON.stringify(info(process.ppid)))
    expect(() => writePidFile(file, info(process.pid))).toThrow(/already runs/)
    expect(readPidFile(file)?.pid).toBe(process.ppid)
    writeFileSync(file, JSON.stringify(info(3_999_999)))
    writePidFile(file, info(process.pid))
    expect(readPidFile(file)?.pid).toBe(process.pid)
    releasePidFile(file)
    expect(existsSync(file)).toBe(false)
  })

  test('daemonState: none, garbage and dead pids are "not running" and cleaned up', () => {
    const home = fresh()
    expect(daemonState(home)).toEqual({ running: false, pidFile: pidFilePath(home) })
    writeFileSync(pidFilePath(home), 'not json')
    expect(daemonState(home).running).toBe(false)
    expect(existsSync(pidFilePath(home))).toBe(false)
    writeFileSync(pidFilePath(home), JSON.stringify(info(3_999_999)))
    expect(daemonState(home)).toMatchObject({ running: false, stale: { pid: 3_999_999 } })
    writeFileSync(pidFilePath(home), JSON.stringify(info(process.pid)))
    expect(daemonState(home)).toMatchObject({ running: true, info: { pid: process.pid } })
    expect(isAlive(3_999_999)).toBe(false)
  })
})
