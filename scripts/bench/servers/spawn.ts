/**
 * Servers of the benchmarks in their own processes: each prints one JSON object with its url first (maybe
 * over several lines). `stopServer` ends one of them, `stopAll` every server started here.
 */
const children: Array<ReturnType<typeof Bun.spawn>> = []

export async function spawnServer(
  args: string[],
  cwd: string,
  stderr: 'inherit' | 'ignore' = 'inherit',
): Promise<{ url: string; pid: number }> {
  const child = Bun.spawn([process.execPath, '--no-env-file', ...args], {
    cwd,
    stdout: 'pipe',
    stderr,
    env: { ...process.env, NO_COLOR: '1' },
  })
  children.push(child)
  const reader = child.stdout.getReader()
  let text = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) throw new Error(`server ${args.join(' ')} exited before printing its url`)
    text += new TextDecoder().decode(value)
    try {
      const parsed = JSON.parse(text) as { url: string }
      reader.releaseLock()
      return { url: parsed.url, pid: child.pid }
    } catch {
      // not complete yet
    }
  }
}

export async function stopServer(pid: number): Promise<void> {
  const i = children.findIndex((c) => c.pid === pid)
  const child = children[i]
  if (!child) return
  children.splice(i, 1)
  child.kill('SIGTERM')
  await child.exited
}

export async function stopAll(): Promise<void> {
  for (const child of children) child.kill('SIGTERM')
  await Promise.all(children.map((c) => c.exited))
  children.length = 0
}

/**
 * On SIGINT or SIGTERM: `onSignal` (the bench marks that what fails next is the stopping), then `cleanUp`,
 * then exit 130 or 143, so a stopped bench leaves no process behind.
 */
export function stopOnSignals(cleanUp: () => Promise<void>, onSignal: (signal: string) => void): void {
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.once(signal, () => {
      onSignal(signal)
      void cleanUp().finally(() => process.exit(code))
    })
  }
}
