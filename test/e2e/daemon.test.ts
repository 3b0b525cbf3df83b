/**
 * Daemon mode through the real CLI: `serve` (foreground and --detach), `status`, `logs`, `stop`, in temp
 * state directories, on free ports, in front of a fake Ollama. Every server started here is stopped, by pid
 * as a last resort.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { secondServeRecordPath, serveLogPath, serveRecordPath } from '../../src/core/home.ts'
import { isAlive } from '../../src/core/process.ts'
import { readPidFile } from '../../src/daemon/pidfile.ts'
import { ROOT, runCli, spawnCli, tempDir } from '../helpers/cli.ts'
import { type FakeServer, startFakeOllama } from '../helpers/fake-ollama.ts'

const SLOW = 120_000
const dirs: Array<{ cleanup: () => void }> = []
const homes: string[] = []
const pids = new Set<number>()
let ollama: FakeServer

beforeAll(async () => {
  ollama = await startFakeOllama()
})

afterAll(async () => {
  for (const home of homes) {
    const pid = readPidFile(serveRecordPath(home))?.pid
    if (pid !== undefined) pids.add(pid)
  }
  for (const pid of pids) if (isAlive(pid)) process.kill(pid, 'SIGKILL')
  await ollama.stop()
  for (const d of dirs) d.cleanup()
})

/** A temp working directory with an orch.yaml (backends: the fake Ollama unless given); returns it and its home. */
function workspace(yaml?: string): { cwd: string; home: string } {
  const d = tempDir('orch-daemon-e2e-')
  dirs.push(d)
  const backends = `backends:\n  - name: fake\n    type: ollama\n    url: ${ollama.url}\n`
  writeFileSync(join(d.path, 'orch.yaml'), yaml ?? `${backends}graceful_shutdown_timeout_ms: 1000\n`)
  const home = join(d.path, '.orch')
  homes.push(home)
  return { cwd: d.path, home }
}

interface Foreground {
  proc: ReturnType<typeof spawnCli>
  info: { url: string; pid: number; home: string; mode: string; pid_file: string }
  stderr: () => string
}

/** `orch serve --port 0 --json` in the foreground, as from a terminal; resolves once it printed where it listens. */
async function foreground(cwd: string, args: string[] = []): Promise<Foreground> {
  const proc = spawnCli(['serve', '--port', '0', '--json', ...args], { cwd })
  pids.add(proc.pid)
  let err = ''
  void (async () => {
    for await (const chunk of proc.stderr) err += new TextDecoder().decode(chunk)
  })()
  let out = ''
  const reader = proc.stdout.getReader()
  for (;;) {
    const { value, done } = await reader.read()
    if (done) throw new Error(`orch serve exited before listening:\n${err}`)
    out += new TextDecoder().decode(value)
    try {
      return { proc, info: JSON.parse(out), stderr: () => err }
    } catch {
      // not the whole object yet
    }
  }
}

/** A pid that no process has now. */
function deadPid(): number {
  for (let pid = 3_999_999; ; pid--) if (!isAlive(pid)) return pid
}

describe('orch serve --detach, status, logs, stop', () => {
  test(
    'a full life: start in the background, report, answer, log, refuse a second, stop',
    async () => {
      const { cwd, home } = workspace()
      const started = await runCli(['serve', '--detach', '--port', '0', '--json'], { cwd })
      expect(started.code, started.stderr).toBe(0)
      const info = started.json<{ url: string; pid: number; home: string; pid_file: string; log_file: string }>()
      pids.add(info.pid)
      expect(info).toMatchObject({ home, pid_file: serveRecordPath(home), log_file: serveLogPath(home) })
      expect(info.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      expect(isAlive(info.pid)).toBe(true)
      expect(readPidFile(serveRecordPath(home))).toMatchObject({ pid: info.pid, url: info.url })

      const status = await runCli(['status', '--json'], { cwd })
      expect(status.code, status.stderr).toBe(0)
      const s = status.json()
      expect(s).toMatchObject({ running: true, pid: info.pid, url: info.url, answering: true, ready: true })
      expect(s.uptime_s).toBeGreaterThanOrEqual(0)
      expect(s.backends).toEqual([{ name: 'fake', url: ollama.url, healthy: true }])
      expect(s.stats).toMatchObject({ requests: expect.any(Number), queued: 0, errors: 0 })

      const table = await runCli(['status'], { cwd })
      expect(table.code).toBe(0)
      for (const text of ['running', `${info.pid}`, info.url, 'uptime', 'ready', 'yes (1 of 1 backends healthy)', 'queued']) {
        expect(table.stdout).toContain(text)
      }

      const health = await fetch(`${info.url}/health`)
      expect(health.status).toBe(200)
      expect(await health.json()).toMatchObject({ status: 'ok' })

      const logs = await runCli(['logs', '--tail', '20'], { cwd })
      expect(logs.code).toBe(0)
      expect(logs.stdout).toContain(`orch serve listening on ${info.url}`)

      const second = await runCli(['serve', '--detach', '--port', '0'], { cwd })
      expect(second.code).toBe(2)
      expect(second.stderr).toContain('already runs')
      expect(second.stderr).toContain('in the background')
      expect(second.stderr).toContain(info.url)
      expect(second.stderr).toContain(`pid ${info.pid}`)

      const stopped = await runCli(['stop'], { cwd })
      expect(stopped.code, stopped.stderr).toBe(0)
      expect(stopped.stdout).toContain(`orch serve stopped (pid ${info.pid}, ${info.url}, was running in the background)`)
      expect(existsSync(serveRecordPath(home))).toBe(false)
      expect(isAlive(info.pid)).toBe(false)

      const after = await runCli(['status'], { cwd })
      expect(after.code).toBe(0)
      expect(after.stdout).toContain('not running')
      const again = await runCli(['stop', '--json'], { cwd })
      expect(again.code).toBe(0)
      expect(again.json()).toMatchObject({ stopped: false, running: false })
      const tail = await runCli(['logs', '--tail', '3'], { cwd })
      expect(tail.stdout).toContain(`stopped (pid ${info.pid})`)
    },
    SLOW,
  )

  test(
    'the human line names the url, pid and log; a closed backend port does not stop serve from starting',
    async () => {
      const { cwd, home } = workspace(
        'backends:\n  - name: gone\n    type: ollama\n    url: http://127.0.0.1:9\ngraceful_shutdown_timeout_ms: 1000\n',
      )
      const started = await runCli(['serve', '--detach', '--port', '0'], { cwd })
      expect(started.code, started.stderr).toBe(0)
      const info = readPidFile(serveRecordPath(home))
      expect(info).toBeDefined()
      pids.add(info?.pid as number)
      expect(started.stdout).toContain(`orch serve running in the background: ${info?.url} (pid ${info?.pid}, logs: ${serveLogPath(home)})`)
      const status = (await runCli(['status', '--json'], { cwd })).json()
      expect(status).toMatchObject({ running: true, answering: true, ready: false })
      const stopped = await runCli(['stop', '--timeout', '20s', '--json'], { cwd })
      expect(stopped.json()).toMatchObject({ stopped: true, forced: false, pid: info?.pid })
      expect(isAlive(info?.pid as number)).toBe(false)
    },
    SLOW,
  )

  test(
    'a server that cannot start: exit 1 with the last lines of its log, no pid file, no process',
    async () => {
      const { cwd, home } = workspace()
      const holder = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('taken') })
      try {
        const r = await runCli(['serve', '--detach', '--port', String(holder.port)], { cwd })
        expect(r.code).toBe(1)
        expect(r.stderr).toContain('before it was listening')
        expect(r.stderr).toContain('cannot listen')
        expect(existsSync(serveRecordPath(home))).toBe(false)
      } finally {
        await holder.stop(true)
      }
    },
    SLOW,
  )

  test('a stale pid file (its process is gone) is removed by status and by stop', async () => {
    const { cwd, home } = workspace()
    mkdirSync(home, { recursive: true })
    const stale = { pid: deadPid(), url: 'http://127.0.0.1:1', started_at: new Date().toISOString(), version: '0', argv: ['serve'] }
    writeFileSync(serveRecordPath(home), JSON.stringify(stale))
    const status = await runCli(['status', '--json'], { cwd })
    expect(status.json()).toMatchObject({ running: false, stale_pid_removed: stale.pid })
    expect(existsSync(serveRecordPath(home))).toBe(false)

    writeFileSync(serveRecordPath(home), JSON.stringify(stale))
    const stop = await runCli(['stop'], { cwd })
    expect(stop.code).toBe(0)
    expect(stop.stdout).toContain('not running')
    expect(stop.stdout).toContain(`stale pid file: pid ${stale.pid}`)
    expect(existsSync(serveRecordPath(home))).toBe(false)
  })

  test.skipIf(!existsSync('/proc/self/cmdline'))(
    'a pid reused by another process is not orch serve: not signalled, file removed',
    async () => {
      const { cwd, home } = workspace()
      mkdirSync(home, { recursive: true })
      const other = { pid: process.pid, url: 'http://127.0.0.1:1', started_at: '', version: '0', argv: ['serve', '--pid-file', 'x.pid'] }
      writeFileSync(serveRecordPath(home), JSON.stringify(other))
      const stop = await runCli(['stop', '--json'], { cwd })
      expect(stop.json()).toMatchObject({ stopped: false, stale_pid: process.pid })
      expect(existsSync(serveRecordPath(home))).toBe(false)
    },
  )
})

describe('a foreground orch serve is recorded like a detached one', () => {
  test(
    'status names it, a second serve is refused (exit 2) naming it, stop stops it and the record goes',
    async () => {
      const { cwd, home } = workspace()
      const fg = await foreground(cwd)
      expect(fg.info).toMatchObject({ pid: fg.proc.pid, home, mode: 'foreground', pid_file: serveRecordPath(home) })
      expect(readPidFile(serveRecordPath(home))).toMatchObject({ pid: fg.proc.pid, url: fg.info.url, mode: 'foreground', home })

      const status = await runCli(['status', '--json'], { cwd })
      expect(status.json()).toMatchObject({ running: true, pid: fg.proc.pid, url: fg.info.url, mode: 'foreground', answering: true })
      const table = await runCli(['status'], { cwd })
      expect(table.stdout).toContain('running in the foreground')
      const logs = await runCli(['logs'], { cwd })
      expect(logs.code).toBe(1)
      expect(logs.stderr).toContain(`orch serve (pid ${fg.proc.pid}) runs in the foreground and logs to its terminal`)

      for (const args of [
        ['serve', '--port', '0'],
        ['serve', '--detach', '--port', '0'],
      ]) {
        const second = await runCli(args, { cwd })
        expect(second.code, args.join(' ')).toBe(2)
        expect(second.stderr).toContain(
          `orch serve already runs for this state directory (${home}): ${fg.info.url} (pid ${fg.proc.pid}, in the foreground)`,
        )
        expect(second.stderr).toContain('`orch stop`')
        expect(second.stderr).toContain('--allow-second')
      }
      expect(readPidFile(serveRecordPath(home))?.pid).toBe(fg.proc.pid)

      const stopped = await runCli(['stop'], { cwd })
      expect(stopped.code, stopped.stderr).toBe(0)
      expect(stopped.stdout).toContain(`orch serve stopped (pid ${fg.proc.pid}, ${fg.info.url}, was running in the foreground)`)
      expect(await fg.proc.exited).toBe(0)
      expect(existsSync(serveRecordPath(home))).toBe(false)
      expect((await runCli(['status', '--json'], { cwd })).json()).toMatchObject({ running: false })
    },
    SLOW,
  )

  test(
    'after kill -9 the record is stale: status says so and removes it, and the next serve starts',
    async () => {
      const { cwd, home } = workspace()
      const fg = await foreground(cwd)
      fg.proc.kill('SIGKILL')
      await fg.proc.exited
      expect(existsSync(serveRecordPath(home))).toBe(true)
      const status = await runCli(['status', '--json'], { cwd })
      expect(status.json()).toMatchObject({ running: false, stale_pid_removed: fg.proc.pid })
      expect(existsSync(serveRecordPath(home))).toBe(false)

      const killed = await foreground(cwd)
      killed.proc.kill('SIGKILL')
      await killed.proc.exited
      const next = await foreground(cwd)
      expect(readPidFile(serveRecordPath(home))?.pid).toBe(next.proc.pid)
      next.proc.kill('SIGINT')
      expect(await next.proc.exited).toBe(0)
      expect(existsSync(serveRecordPath(home))).toBe(false)
    },
    SLOW,
  )

  test(
    '--allow-second: both are recorded and listed; a port one of them holds is named; stop stops both',
    async () => {
      const { cwd, home } = workspace()
      const first = await foreground(cwd)
      const port = new URL(first.info.url).port
      const clash = await runCli(['serve', '--allow-second', '--port', port], { cwd })
      expect(clash.code).toBe(1)
      expect(clash.stderr).toContain(`cannot listen on 127.0.0.1:${port}`)
      expect(clash.stderr).toContain(`port ${port} is held by orch serve pid ${first.proc.pid} (in the foreground) of this state directory`)

      const second = await foreground(cwd, ['--allow-second'])
      expect(second.info.pid_file).toBe(secondServeRecordPath(home, second.proc.pid))
      const status = (await runCli(['status', '--json'], { cwd })).json()
      expect(status).toMatchObject({ pid: first.proc.pid, also_running: [{ pid: second.proc.pid, url: second.info.url }] })

      const stopped = await runCli(['stop', '--json'], { cwd })
      const result = stopped.json()
      expect(result).toMatchObject({ stopped: true, pid: first.proc.pid })
      expect(result.servers.map((s: { pid: number }) => s.pid).sort()).toEqual([first.proc.pid, second.proc.pid].sort())
      expect([await first.proc.exited, await second.proc.exited]).toEqual([0, 0])
      expect(existsSync(serveRecordPath(home)) || existsSync(secondServeRecordPath(home, second.proc.pid))).toBe(false)
    },
    SLOW,
  )

  test(
    'a port taken by an orch serve of another state directory fails (never shared), and the hint says whose it is',
    async () => {
      const a = workspace()
      const b = workspace()
      const fg = await foreground(a.cwd)
      const port = new URL(fg.info.url).port
      const r = await runCli(['serve', '--port', port], { cwd: b.cwd })
      expect(r.code, r.stderr).toBe(1)
      expect(r.stderr).toContain('held by another orch serve')
      expect(r.stderr).toContain('orch stop --home <its state directory>')
      expect(existsSync(serveRecordPath(b.home))).toBe(false)
      fg.proc.kill('SIGTERM')
      expect(await fg.proc.exited).toBe(0)
    },
    SLOW,
  )

  test(
    'a port taken by another program: the hint says so and how to find it, not `orch stop`',
    async () => {
      const { cwd } = workspace()
      const holder = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('taken') })
      try {
        const r = await runCli(['serve', '--port', String(holder.port)], { cwd })
        expect(r.code).toBe(1)
        expect(r.stderr).toContain(`another program holds port ${holder.port}`)
        expect(r.stderr).toContain(`lsof -i :${holder.port}`)
        expect(r.stderr).not.toContain('orch stop')
      } finally {
        await holder.stop(true)
      }
    },
    SLOW,
  )
})

describe('orch logs', () => {
  test('--service: serve by default, pool/worker logs that exist, otherwise exit 2 with the list', async () => {
    const { cwd, home } = workspace()
    const none = await runCli(['logs'], { cwd })
    expect(none.code).toBe(1)
    expect(none.stderr).toContain('no log yet')
    mkdirSync(join(home, 'logs/gpu'), { recursive: true })
    writeFileSync(serveLogPath(home), 'one\ntwo\nthree\n')
    writeFileSync(join(home, 'logs/gpu/worker-0.log'), 'w1\nw2\n')
    const tail = await runCli(['logs', '--tail', '2'], { cwd })
    expect(tail.stdout).toBe('two\nthree\n')
    const worker = await runCli(['logs', '--service', 'gpu/worker-0', '--json'], { cwd })
    expect(worker.json()).toMatchObject({ service: 'gpu/worker-0', lines: ['w1', 'w2'] })
    const unknown = await runCli(['logs', '--service', 'gpu/worker-9'], { cwd })
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain('available: serve, gpu/worker-0')
    const bad = await runCli(['logs', '--tail', 'ten'], { cwd })
    expect(bad.code).toBe(2)
  })

  test(
    '--follow prints lines appended after it started, until interrupted (exit 0)',
    async () => {
      const { cwd, home } = workspace()
      mkdirSync(join(home, 'logs'), { recursive: true })
      writeFileSync(serveLogPath(home), 'old line\n')
      const binary = process.env.ORCH_TEST_BINARY
      const cmd = binary ? [resolve(ROOT, binary)] : [process.execPath, '--no-env-file', join(ROOT, 'commands/index.ts')]
      const env: Record<string, string> = { NO_COLOR: '1' }
      for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('ORCH_')) env[k] ??= v
      const proc = Bun.spawn([...cmd, 'logs', '--follow', '--tail', '1'], { cwd, env, stdout: 'pipe', stderr: 'pipe' })
      pids.add(proc.pid)
      const reader = proc.stdout.getReader()
      let seen = ''
      const waitFor = async (text: string) => {
        while (!seen.includes(text)) {
          const { value, done } = await reader.read()
          if (done) throw new Error(`logs --follow ended before "${text}"; got:\n${seen}`)
          seen += new TextDecoder().decode(value)
        }
      }
      try {
        await waitFor('old line\n')
        appendFileSync(serveLogPath(home), 'new line\nhalf a ')
        await waitFor('new line\n')
        appendFileSync(serveLogPath(home), 'line\n')
        await waitFor('half a line\n')
        proc.kill('SIGINT')
        expect(await proc.exited).toBe(0)
        expect(seen).toBe('old line\nnew line\nhalf a line\n')
      } finally {
        if (proc.exitCode === null) proc.kill('SIGKILL')
      }
    },
    SLOW,
  )
})
