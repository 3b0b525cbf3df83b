/**
 * `orch serve` as a user runs it (the CLI in a child process): it starts with no model server and says so,
 * queues durable work until a backend answers, and on SIGTERM lets in-flight work finish, hands the rest
 * back to the queue and exits 0; the next start runs what was left.
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT, tempDir } from '../helpers/cli.ts'
import { type FakeServer, startFakeOllama } from '../helpers/fake-ollama.ts'

const dir = tempDir('orch-serve-e2e-')
const fakes: FakeServer[] = []
afterAll(async () => {
  for (const fake of fakes) await fake.stop()
  dir.cleanup()
})

interface Running {
  proc: ReturnType<typeof Bun.spawn>
  url: string
  stderr: () => string
}

async function serve(backendUrl: string, graceMs = 5000): Promise<Running> {
  writeFileSync(
    join(dir.path, 'orch.yaml'),
    [
      'backends:',
      `  - { name: local, type: ollama, url: "${backendUrl}", concurrency: 2 }`,
      `graceful_shutdown_timeout_ms: ${graceMs}`,
      'tasks: { synchronous: NORMAL }',
      'infrastructure_system: { performance_monitoring: { enabled: false } }',
      '',
    ].join('\n'),
  )
  const proc = Bun.spawn([process.execPath, '--no-env-file', join(ROOT, 'commands/index.ts'), 'serve', '--port', '0', '--json'], {
    cwd: dir.path,
    env: { ...process.env, NO_COLOR: '1', ORCH_HOME: join(dir.path, '.orch') },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  let err = ''
  void (async () => {
    for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) err += new TextDecoder().decode(chunk)
  })()
  let out = ''
  const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader()
  for (;;) {
    const { value, done } = await reader.read()
    if (done) throw new Error(`orch serve exited before listening:\n${err}`)
    out += new TextDecoder().decode(value)
    try {
      return { proc, url: (JSON.parse(out) as { url: string }).url, stderr: () => err }
    } catch {
      // not the whole object yet
    }
  }
}

const submit = async (url: string, prompt: string) => {
  const response = await fetch(`${url}/queue/submit`, {
    method: 'POST',
    body: JSON.stringify({ type: 'generate', payload: { model: 'llama3.2', prompt } }),
  })
  expect(response.status).toBe(202)
  return ((await response.json()) as { id: string }).id
}
const task = async (url: string, id: string) =>
  (await (await fetch(`${url}/tasks/${id}`)).json()) as { state: string; result?: { response: string } }

describe('orch serve', () => {
  test('starts with no model server, says so and how to add one, and keeps work queued', async () => {
    const closed = await startFakeOllama()
    const deadUrl = closed.url
    await closed.stop()
    const s = await serve(deadUrl)
    expect((await fetch(`${s.url}/health`)).status).toBe(200)
    expect((await fetch(`${s.url}/ready`)).status).toBe(503)
    const id = await submit(s.url, 'kept for later')
    await Bun.sleep(300)
    expect((await task(s.url, id)).state).toBe('queued')
    expect(s.stderr()).toContain('no model backend answers')
    expect(s.stderr()).toContain('backends:')
    s.proc.kill('SIGTERM')
    expect(await s.proc.exited).toBe(0)

    // The next start, now with a model server, runs what was left.
    const fake = await startFakeOllama()
    fakes.push(fake)
    const again = await serve(fake.url)
    for (let i = 0; i < 200 && (await task(again.url, id)).state !== 'done'; i++) await Bun.sleep(25)
    expect(await task(again.url, id)).toMatchObject({ state: 'done', result: { response: 'kept for later' } })
    again.proc.kill('SIGTERM')
    expect(await again.proc.exited).toBe(0)
  })

  test('SIGTERM lets in-flight work finish within the grace period and exits 0', async () => {
    const fake = await startFakeOllama({ tokenDelayMs: 100 })
    fakes.push(fake)
    const s = await serve(fake.url)
    const slow = await submit(s.url, 'one two three four five')
    await fake.until(() => fake.stats.inFlight === 1)
    s.proc.kill('SIGTERM')
    expect(await s.proc.exited).toBe(0)
    fake.set({ tokenDelayMs: 0 })
    const again = await serve(fake.url)
    expect(await task(again.url, slow)).toMatchObject({ state: 'done', result: { response: 'one two three four five' } })
    expect(fake.stats.total).toBe(1) // finished before the exit: never run twice
    again.proc.kill('SIGTERM')
    expect(await again.proc.exited).toBe(0)
  })

  test('work still running when the grace period ends is handed back untouched and runs at the next start', async () => {
    const fake = await startFakeOllama({ tokenDelayMs: 400 })
    fakes.push(fake)
    const s = await serve(fake.url, 300)
    const id = await submit(s.url, 'a b c d e f')
    await fake.until(() => fake.stats.inFlight === 1)
    s.proc.kill('SIGTERM')
    expect(await s.proc.exited).toBe(0)
    expect(fake.stats.abortedCount).toBe(1)
    fake.set({ tokenDelayMs: 0 })
    const again = await serve(fake.url)
    for (let i = 0; i < 200 && (await task(again.url, id)).state !== 'done'; i++) await Bun.sleep(25)
    expect(await task(again.url, id)).toMatchObject({ state: 'done', attempts: 1, stalled_count: 0 })
    again.proc.kill('SIGTERM')
    expect(await again.proc.exited).toBe(0)
  })
})
