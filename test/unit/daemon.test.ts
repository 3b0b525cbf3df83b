import { afterAll, describe, expect, test } from 'bun:test'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { secondServeRecordPath, serveLogPath, serveRecordPath } from '../../src/core/home.ts'
import { rotateLog } from '../../src/core/log-rotate.ts'
import { isAlive } from '../../src/core/process.ts'
import { listServices, readSince, readTail, serviceLogPath } from '../../src/daemon/logfile.ts'
import {
  daemonState,
  type PidInfo,
  readPidFile,
  recordServe,
  releasePidFile,
  serveRecords,
  writePidFile,
} from '../../src/daemon/pidfile.ts'
import { portTakenHint } from '../../src/daemon/port-hint.ts'
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
  const info = (pid: number, port = 1): PidInfo => ({
    pid,
    url: `http://127.0.0.1:${port}`,
    started_at: new Date().toISOString(),
    version: '0',
    argv: [],
    mode: 'foreground',
    home: '/state',
  })

  test('written exclusively; a live owner refuses a second writer, a stale one is replaced', () => {
    const file = serveRecordPath(fresh())
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
    expect(daemonState(home)).toEqual({ running: false, pidFile: serveRecordPath(home) })
    writeFileSync(serveRecordPath(home), 'not json')
    expect(daemonState(home).running).toBe(false)
    expect(existsSync(serveRecordPath(home))).toBe(false)
    writeFileSync(serveRecordPath(home), JSON.stringify(info(3_999_999)))
    expect(daemonState(home)).toMatchObject({ running: false, stale: { pid: 3_999_999 } })
    writeFileSync(serveRecordPath(home), JSON.stringify(info(process.pid)))
    expect(daemonState(home)).toMatchObject({ running: true, info: { pid: process.pid } })
    expect(isAlive(3_999_999)).toBe(false)
  })

  test('a file written before mode and home were recorded reads as a detached server', () => {
    const file = serveRecordPath(fresh())
    writeFileSync(file, JSON.stringify({ pid: 42, url: 'http://127.0.0.1:1', started_at: '', version: '0', argv: ['serve'] }))
    expect(readPidFile(file)).toMatchObject({ pid: 42, mode: 'detached', home: '' })
  })

  test('recordServe: serve.pid first; a second live server is refused (exit 2), or recorded beside it when allowed', () => {
    const home = fresh()
    // The parent process stands in for a first server that runs.
    writeFileSync(serveRecordPath(home), JSON.stringify(info(process.ppid)))
    let refused: unknown
    try {
      recordServe(home, info(process.pid))
    } catch (error) {
      refused = error
    }
    expect(refused).toMatchObject({ code: 'E_ALREADY_RUNNING', exitCode: 2 })
    expect((refused as Error).message).toContain(`(pid ${process.ppid}, in the foreground)`)
    expect(recordServe(home, info(process.pid), true)).toBe(secondServeRecordPath(home, process.pid))
    const { live } = serveRecords(home)
    expect(live.map((r) => r.info.pid)).toEqual([process.ppid, process.pid])
    const state = daemonState(home)
    expect(state).toMatchObject({ running: true, info: { pid: process.ppid }, others: [{ info: { pid: process.pid } }] })
  })

  test('serveRecords: dead records go, whichever file they are in; a live second one remains', () => {
    const home = fresh()
    writeFileSync(serveRecordPath(home), JSON.stringify(info(3_999_999)))
    writeFileSync(secondServeRecordPath(home, 3_999_998), JSON.stringify(info(3_999_998)))
    writeFileSync(secondServeRecordPath(home, process.pid), JSON.stringify(info(process.pid)))
    const { live, stale } = serveRecords(home)
    expect(live.map((r) => r.file)).toEqual([secondServeRecordPath(home, process.pid)])
    expect(stale.map((i) => i.pid).sort()).toEqual([3_999_998, 3_999_999])
    expect(existsSync(serveRecordPath(home))).toBe(false)
    expect(existsSync(secondServeRecordPath(home, 3_999_998))).toBe(false)
  })
})

describe('port taken', () => {
  const record = (pid: number, port: number) => ({
    file: '/state/serve.pid',
    info: { pid, url: `http://127.0.0.1:${port}`, started_at: '', version: '0', argv: [], mode: 'detached' as const, home: '/state' },
  })

  test('held by a server of this state directory: orch stop', () => {
    const hint = portTakenHint({ port: 9097, records: [record(7, 9097)], stopCommand: 'orch stop' })
    expect(hint).toContain('held by orch serve pid 7 (in the background)')
    expect(hint).toContain('`orch stop`')
  })

  test('held by another orch serve, or by another program: no false `orch stop`', () => {
    const orch = portTakenHint({ port: 9097, records: [record(7, 9100)], orchVersion: '0.1.0', stopCommand: 'orch stop' })
    expect(orch).toContain('another orch serve (version 0.1.0) with a different state directory')
    expect(orch).toContain('orch stop --home <its state directory>')
    const other = portTakenHint({ port: 9097, records: [], stopCommand: 'orch stop' })
    expect(other).toContain('another program holds port 9097')
    expect(other).toContain('lsof -i :9097')
    expect(other).toContain('--port 9098')
    expect(other).not.toContain('orch stop')
  })
})
