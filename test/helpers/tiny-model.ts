/**
 * The tiny random-weight GGUF model (scripts/make-tiny-gguf.ts), written once per test process into a temp
 * directory, and a running `orch model-worker` on it. Real node-llama-cpp inference: tests assert token
 * counts, determinism and plumbing, never the (gibberish) text. On 2-core machines one thread is fastest.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { writeTinyGguf } from '../../scripts/make-tiny-gguf.ts'
import { spawnCli } from './cli.ts'

let dir: string | undefined

/** The path of the tiny model (written on first use; removed when the process exits). */
export function tinyModelPath(): string {
  if (!dir) {
    dir = mkdtempSync(join(tmpdir(), 'orch-tiny-model-'))
    const made = dir
    process.once('exit', () => rmSync(made, { recursive: true, force: true }))
    writeTinyGguf(join(dir, 'tiny.gguf'))
  }
  return join(dir, 'tiny.gguf')
}

export interface ModelWorker {
  url: string
  pid: number
  proc: ReturnType<typeof spawnCli>
  stderr(): string
  stop(): Promise<void>
}

/** Start `orch model-worker` on the tiny model (port 0) and wait for its ready line. */
export async function startModelWorker(extra: string[] = [], model = tinyModelPath()): Promise<ModelWorker> {
  const proc = spawnCli(['model-worker', '--model', model, '--port', '0', '--threads', '1', '--json', ...extra])
  let err = ''
  void (async () => {
    for await (const chunk of proc.stderr) err += new TextDecoder().decode(chunk)
  })()
  // The ready facts are one JSON object on stdout; the process goes on running after it.
  let text = ''
  let facts: { url?: string } | undefined
  const reader = proc.stdout.getReader()
  while (facts === undefined) {
    const { value, done } = await reader.read()
    if (done) break
    text += new TextDecoder().decode(value)
    try {
      facts = JSON.parse(text)
    } catch {
      // not complete yet
    }
  }
  reader.releaseLock()
  if (facts === undefined) {
    await proc.exited
    throw new Error(`model-worker did not start (exit ${proc.exitCode}): ${text}${err}`)
  }
  return {
    url: String(facts.url),
    pid: proc.pid,
    proc,
    stderr: () => err,
    async stop() {
      proc.kill('SIGTERM')
      await proc.exited
    },
  }
}
