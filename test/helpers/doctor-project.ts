/** A temp project for `orch doctor` tests: orch.yaml, a bin/ of fake programs, and the CLI run there. */
import { afterEach } from 'bun:test'
import { chmodSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { runCli, tempDir } from './cli.ts'

const dirs: Array<{ cleanup: () => void }> = []
afterEach(() => {
  for (const dir of dirs.splice(0)) dir.cleanup()
})

/** A loopback port nothing listens on (it was free a moment ago). */
export function closedPort(): number {
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response() })
  const port = server.port as number
  server.stop(true)
  return port
}

/** A temp project: orch.yaml, a bin/ directory for fake programs, and `run` that spawns orch doctor there. */
export function project(yaml: string) {
  const dir = tempDir('orch-e2e-doctor-')
  dirs.push(dir)
  writeFileSync(join(dir.path, 'orch.yaml'), yaml)
  const bin = join(dir.path, 'bin')
  const fake = (name: string, body: string) => {
    Bun.spawnSync(['mkdir', '-p', bin])
    writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`)
    chmodSync(join(bin, name), 0o755)
  }
  // bin/ first, then only system directories: no real nvidia-smi or ollama leaks in from the machine.
  const run = (args: string[] = []) =>
    runCli(['doctor', ...args, '--home', join(dir.path, 'home')], { cwd: dir.path, env: { PATH: `${bin}:/usr/bin:/bin` } })
  return { path: dir.path, fake, run }
}

/** One `backends:` item of orch.yaml. */
export const backend = (name: string, url: string, models?: string[]) =>
  [`  - name: ${name}`, `    url: ${url}`, ...(models ? [`    models: [${models.join(', ')}]`] : [])].join('\n')

/** `server.port` on a closed port, so the port check passes whatever runs on the machine. */
export const serverPort = () => ['server:', `  port: ${closedPort()}`].join('\n')
