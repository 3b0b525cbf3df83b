/**
 * Cold start of the compiled binary (warm page cache): `dist/orch --help` and `dist/orch --version`,
 * against two baselines measured in the same run: `/bin/true` (process spawn alone) and a compiled
 * empty Bun program (the runtime's own start). Prints medians, p90s and ratios.
 * Usage: bun scripts/bench/cold-start.ts [--runs 200] [--binary dist/orch]
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { runs: { type: 'string', default: '200' }, binary: { type: 'string', default: 'dist/orch' } },
})
const runs = Number(values.runs)
const binary = values.binary as string
if (!existsSync(binary)) {
  console.error(`${binary} not found: run \`npm run build\` first`)
  process.exit(2)
}

const dir = mkdtempSync(join(tmpdir(), 'orch-bench-'))
const emptySource = join(dir, 'empty.ts')
writeFileSync(emptySource, 'export {}\n')
const empty = join(dir, 'empty')
const built = await Bun.build({
  entrypoints: [emptySource],
  bytecode: true,
  format: 'esm',
  compile: { outfile: empty, autoloadDotenv: false, autoloadBunfig: false },
})
if (!built.success) throw new Error('could not build the empty baseline')

function once(cmd: string[]): number {
  const started = Bun.nanoseconds()
  const r = Bun.spawnSync(cmd, { stdout: 'ignore', stderr: 'ignore' })
  if (r.exitCode !== 0) throw new Error(`${cmd.join(' ')} exited ${r.exitCode}`)
  return (Bun.nanoseconds() - started) / 1e6
}
const quantile = (s: number[], q: number) => [...s].sort((a, b) => a - b)[Math.min(s.length - 1, Math.floor(q * s.length))] as number

const cases: Record<string, string[]> = {
  '/bin/true': ['/bin/true'],
  'empty bun binary': [empty],
  'orch --version': [binary, '--version'],
  'orch --help': [binary, '--help'],
}
const results: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((name) => [name, []]))
// Rounds interleave the commands so that machine noise hits each alike; the first rounds warm the page cache.
for (let round = 0; round < runs + 10; round++) {
  for (const [name, cmd] of Object.entries(cases)) {
    const ms = once(cmd)
    if (round >= 10) results[name]?.push(ms)
  }
}
rmSync(dir, { recursive: true, force: true })

const base = quantile(results['empty bun binary'] as number[], 0.5)
console.log(`cold start, ${runs} runs each (warm page cache), median / p90, ratio of medians to the empty Bun binary`)
for (const [name, samples] of Object.entries(results)) {
  const median = quantile(samples, 0.5)
  console.log(
    `${name.padEnd(18)} ${median.toFixed(2).padStart(7)} ms  ${quantile(samples, 0.9).toFixed(2).padStart(7)} ms   ×${(median / base).toFixed(2)}`,
  )
}
