/**
 * Cold start of the compiled binary (warm page cache): `dist/orch --help`, `--version`, an unknown command
 * (exit 2, did-you-mean) and the `--help` of two commands (those load the command's module), against two
 * baselines measured in the same run: `/bin/true` (process spawn alone) and a compiled empty Bun program
 * (the runtime's own start). Prints medians, p90s and ratios; last line: one JSON object.
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

function once(cmd: string[], exitCode: number): number {
  const started = Bun.nanoseconds()
  const r = Bun.spawnSync(cmd, { stdout: 'ignore', stderr: 'ignore' })
  if (r.exitCode !== exitCode) throw new Error(`${cmd.join(' ')} exited ${r.exitCode}, not ${exitCode}`)
  return (Bun.nanoseconds() - started) / 1e6
}
const quantile = (s: number[], q: number) => [...s].sort((a, b) => a - b)[Math.min(s.length - 1, Math.floor(q * s.length))] as number

/** Name → command line and the exit code it must end with. */
const cases: Record<string, { cmd: string[]; exitCode: number }> = {
  '/bin/true': { cmd: ['/bin/true'], exitCode: 0 },
  'empty bun binary': { cmd: [empty], exitCode: 0 },
  'orch --version': { cmd: [binary, '--version'], exitCode: 0 },
  'orch --help': { cmd: [binary, '--help'], exitCode: 0 },
  'orch taks': { cmd: [binary, 'taks'], exitCode: 2 },
  'orch tasks --help': { cmd: [binary, 'tasks', '--help'], exitCode: 0 },
  'orch config --help': { cmd: [binary, 'config', '--help'], exitCode: 0 },
}
const results: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((name) => [name, []]))
// Rounds interleave the commands so that machine noise hits each alike; the first rounds warm the page cache.
for (let round = 0; round < runs + 10; round++) {
  for (const [name, { cmd, exitCode }] of Object.entries(cases)) {
    const ms = once(cmd, exitCode)
    if (round >= 10) results[name]?.push(ms)
  }
}
rmSync(dir, { recursive: true, force: true })

const base = quantile(results['empty bun binary'] as number[], 0.5)
console.log(`cold start, ${runs} runs each (warm page cache), median / p90, ratio of medians to the empty Bun binary`)
for (const [name, samples] of Object.entries(results)) {
  const median = quantile(samples, 0.5)
  console.log(
    `${name.padEnd(20)} ${median.toFixed(2).padStart(7)} ms  ${quantile(samples, 0.9).toFixed(2).padStart(7)} ms   ×${(median / base).toFixed(2)}`,
  )
}
const p50 = (name: string) => Number(quantile(results[name] as number[], 0.5).toFixed(3))
console.log(
  JSON.stringify({
    version_p50_ms: p50('orch --version'),
    help_p50_ms: p50('orch --help'),
    unknown_command_p50_ms: p50('orch taks'),
    tasks_help_p50_ms: p50('orch tasks --help'),
    config_help_p50_ms: p50('orch config --help'),
    empty_bun_p50_ms: p50('empty bun binary'),
    true_p50_ms: p50('/bin/true'),
    version_vs_empty_bun: Number((p50('orch --version') / base).toFixed(3)),
    help_vs_empty_bun: Number((p50('orch --help') / base).toFixed(3)),
  }),
)
