/**
 * `orch tasks` as a user runs it: the CLI spawned with a fixed environment against a real `orch serve`
 * started in this test process (with a token, passed to the CLI as ORCH_SERVER_TOKEN).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { ROOT, runCli, spawnCli, tempDir } from '../helpers/cli.ts'
import { startFakeOllama } from '../helpers/fake-ollama.ts'
import { startTestServe, type TestServe } from '../helpers/serve.ts'

const TOKEN = 'cli-token'
const tmp = tempDir('orch-tasks-cli-')
let s: TestServe
let opts: { cwd: string; env: Record<string, string> }

beforeAll(async () => {
  s = await startTestServe({ fakes: [{}, { models: ['slow'] }], tweak: (c) => (c.server.token = TOKEN) })
  s.fakes[1]?.set({ hang: 'before-headers' })
  opts = { cwd: tmp.path, env: { ORCH_HOME: join(tmp.path, '.orch'), ORCH_SERVER_TOKEN: TOKEN } }
}, 30_000)
afterAll(async () => {
  await s.stop()
  tmp.cleanup()
})

const tasks = (...args: string[]) => runCli(['tasks', ...args, '--url', s.url], opts)

describe('orch tasks', () => {
  test('submit --wait --json prints the finished task with the model’s answer', async () => {
    const r = await tasks('submit', '--model', 'llama3.2', '--prompt', 'cli says hi', '--wait', '--json')
    expect(r.code).toBe(0)
    const task = r.json()
    expect(task).toMatchObject({ state: 'done', type: 'generate', model: 'llama3.2', attempts: 1 })
    expect(task.result.response).toBe('cli says hi')
  }, 30_000)

  test('submit --wait without --json prints the answer itself', async () => {
    const r = await tasks('submit', '--type', 'chat', '--model', 'llama3.2', '--prompt', 'plain words', '--wait')
    expect(r.code).toBe(0)
    expect(r.stdout.trim()).toBe('plain words')
  }, 30_000)

  test('submit, get, list: the id comes back, get shows it, list includes it', async () => {
    const submitted = await tasks(
      'submit',
      '--payload',
      '{"model":"llama3.2","prompt":"listed"}',
      '--tenant',
      'cli',
      '--key',
      'k-1',
      '--json',
    )
    expect(submitted.code).toBe(0)
    const { id, created } = submitted.json()
    expect(created).toBe(true)
    const again = await tasks('submit', '--payload', '{"model":"llama3.2","prompt":"listed"}', '--tenant', 'cli', '--key', 'k-1', '--json')
    expect(again.json()).toMatchObject({ id, created: false })
    await tasks('wait', id)
    const got = await tasks('get', id, '--json')
    expect(got.code).toBe(0)
    expect(got.json()).toMatchObject({ id, tenant: 'cli', idempotency_key: 'k-1', state: 'done' })
    const text = await tasks('get', id)
    expect(text.stdout).toContain(`id        ${id}`)
    expect(text.stdout).toContain('listed')
    const listed = await tasks('list', '--tenant', 'cli', '--json')
    expect(listed.json().tasks.map((t: { id: string }) => t.id)).toEqual([id])
    const table = await tasks('list', '--tenant', 'cli')
    expect(table.stdout).toMatch(/^ID\s+STATE\s+TYPE/)
    expect(table.stdout).toContain(id)
  }, 60_000)

  test('cancel a running task; cancelling it again shows the server’s 409 and exits 1', async () => {
    const { id } = (await tasks('submit', '--model', 'slow', '--prompt', 'hangs', '--json')).json()
    const timedOut = await tasks('wait', id, '--timeout', '300ms')
    expect(timedOut.code).toBe(1)
    expect(timedOut.stderr).toContain('still')
    const cancelled = await tasks('cancel', id)
    expect(cancelled.code).toBe(0)
    expect(cancelled.stdout.trim()).toBe(`${id} cancelled`)
    const again = await tasks('cancel', id)
    expect(again.code).toBe(1)
    expect(again.stderr).toContain('409')
    expect(again.stderr).toContain('already cancelled')
    const waited = await tasks('wait', id, '--json')
    expect(waited.code).toBe(1)
    expect(waited.json().state).toBe('cancelled')
  }, 60_000)

  test('wait --timeout takes every duration orch takes (1h30m, 2m 30s, plain seconds); a bad one exits 2', async () => {
    const { id } = (await tasks('submit', '--model', 'llama3.2', '--prompt', 'waited', '--json')).json()
    for (const timeout of ['1h30m', '2m 30s', '90']) {
      const r = await tasks('wait', id, '--timeout', timeout, '--json')
      expect(r.code).toBe(0)
      expect(r.json()).toMatchObject({ id, state: 'done' })
    }
    const bad = await tasks('wait', id, '--timeout', '30m1h')
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('--timeout must be a duration like 30s, 5m or 1h, got "30m1h"')
  }, 30_000)

  test('without --url the configured server.host and server.port are used; --help shows examples', async () => {
    const env = { ...opts.env, ORCH_SERVER_PORT: String(s.server.port) }
    const r = await runCli(['tasks', 'list', '--limit', '1', '--json'], { ...opts, env })
    expect(r.code).toBe(0)
    expect(r.json().tasks).toBeArray()
    const help = await runCli(['tasks', 'submit', '--help'], opts)
    expect(help.stdout).toContain('Examples:')
    expect(help.stdout).toContain('--prompt')
  }, 30_000)

  test('a payload the server rejects: exit 2 with the field named', async () => {
    const r = await tasks('submit', '--type', 'chat', '--payload', '{"model":"llama3.2","messages":[{"role":"usr","content":"x"}]}')
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('payload.messages[0].role')
  }, 30_000)

  test('a wrong token: exit 1 with the 401 and a hint about server.token', async () => {
    const r = await runCli(['tasks', 'list', '--url', s.url], { ...opts, env: { ...opts.env, ORCH_SERVER_TOKEN: 'wrong' } })
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('401')
    expect(r.stderr).toContain('server.token')
  }, 30_000)

  test('no server at the URL: exit 1, "cannot reach orch serve", hint `orch serve`', async () => {
    const listener = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
    const url = `http://127.0.0.1:${listener.port}`
    listener.stop(true)
    const r = await runCli(['tasks', 'get', 't_x', '--url', url], opts)
    expect(r.code).toBe(1)
    expect(r.stderr).toContain(`cannot reach orch serve at ${url}`)
    expect(r.stderr).toContain('orch serve')
    expect(r.stderr).not.toMatch(/\n\s+at /)
  }, 30_000)

  test('watch streams task events as lines until Ctrl-C (exit 130)', async () => {
    const proc = Bun.spawn(
      [process.execPath, '--no-env-file', join(ROOT, 'commands/index.ts'), 'tasks', 'watch', '--url', s.url, '--json'],
      {
        cwd: tmp.path,
        env: { PATH: process.env.PATH ?? '', NO_COLOR: '1', TZ: 'Etc/UTC', ...opts.env },
        stdout: 'pipe',
        stderr: 'pipe',
      },
    )
    let out = ''
    const pump = (async () => {
      const decoder = new TextDecoder()
      for await (const chunk of proc.stdout) out += decoder.decode(chunk, { stream: true })
    })()
    // Submit until the watcher (still starting up) reports one of them done.
    const ids = new Set<string>()
    const deadline = Date.now() + 20_000
    while (Date.now() < deadline && !out.includes('"change":"done"')) {
      const sub = await s.fetch('/queue/submit', {
        method: 'POST',
        body: JSON.stringify({ type: 'generate', model: 'llama3.2', payload: { prompt: 'watched' } }),
      })
      ids.add(((await sub.json()) as { id: string }).id)
      await Bun.sleep(300)
    }
    proc.kill('SIGINT')
    expect(await proc.exited).toBe(130)
    await pump
    const events = out
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line))
    expect(events.some((e) => e.type === 'task' && ids.has(e.data.id) && e.data.change === 'done')).toBe(true)
    for (let i = 1; i < events.length; i++) expect(events[i].id).toBeGreaterThan(events[i - 1].id)
  }, 60_000)

  test('submit --wait with no backend that answers: the id at once, what it waits for, and Ctrl-C leaves it queued (exit 130)', async () => {
    // A backend whose port was just closed: the server runs, the task is accepted and waits.
    const closed = await startFakeOllama()
    const deadUrl = closed.url
    await closed.stop()
    const down = await startTestServe({
      fakes: [],
      tweak: (c) => {
        c.server.token = TOKEN
        c.backends = [{ name: 'down', type: 'ollama', url: deadUrl, concurrency: 1 }]
      },
    })
    try {
      for (const json of [false, true]) {
        const args = ['tasks', 'submit', '--type', 'generate', '--model', 'llama3.2', '--prompt', 'hi', '--wait', '--url', down.url]
        const proc = spawnCli(json ? [...args, '--json'] : args, opts)
        let err = ''
        const pump = (async () => {
          for await (const chunk of proc.stderr) err += new TextDecoder().decode(chunk)
        })()
        const stdout = new Response(proc.stdout).text()
        const deadline = Date.now() + 20_000
        while (!err.includes('no backend serves llama3.2') && Date.now() < deadline) await Bun.sleep(50)
        const id = /^(t_\w+) queued; waiting/m.exec(err)?.[1]
        expect(id, err).toBeDefined()
        expect(err).toContain('queued: no backend serves llama3.2 yet: none answers (down at')
        proc.kill('SIGINT')
        expect(await proc.exited).toBe(130)
        await pump
        expect(err).toContain(`task ${id} is still queued; orch tasks get ${id} / orch tasks cancel ${id}`)
        const out = await stdout
        // With --json the task as it stands is the only thing on stdout; without, stdout stays empty.
        if (json) expect(JSON.parse(out)).toMatchObject({ id, state: 'queued' })
        else expect(out).toBe('')
        const task = await (await down.fetch(`/tasks/${id}`)).json()
        expect(task).toMatchObject({ id, state: 'queued' })
      }
    } finally {
      await down.stop()
    }
  }, 60_000)
})
