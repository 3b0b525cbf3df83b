/** Running a command of the compiled binary again in bun mode, for the commands that load node-llama-cpp. */
/**
 * The compiled binary loads node-llama-cpp only in bun mode (src/pool/self-launch.ts): run this same command
 * line again that way, from a private temp directory, and pass signals on; its exit code. Undefined when
 * already in bun mode or running from source (the caller goes on itself).
 */
export async function runInBunMode(): Promise<number | undefined> {
  const { orchCommand } = await import('../src/pool/self-launch.ts')
  const { mkdtempSync, rmSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const dir = mkdtempSync(join(tmpdir(), 'orch-model-worker-'))
  try {
    const self = orchCommand(dir)
    if (self.env.BUN_BE_BUN === undefined) return undefined
    const child = Bun.spawn([...self.argv, ...process.argv.slice(2)], {
      env: { ...process.env, ...self.env },
      stdin: 'ignore',
      stdout: 'inherit',
      stderr: 'inherit',
    })
    process.removeAllListeners('SIGINT')
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal))
    return await child.exited
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
