/**
 * Build the single-file binary: dist/orch. `--bytecode` (faster cold start) requires ESM output.
 * Usage: bun scripts/build.ts [--target bun-linux-x64] [--outfile dist/orch]
 */
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { target: { type: 'string' }, outfile: { type: 'string', default: 'dist/orch' } },
})

const started = performance.now()
const result = await Bun.build({
  entrypoints: ['commands/index.ts'],
  minify: true,
  sourcemap: 'linked',
  bytecode: true,
  format: 'esm',
  compile: {
    outfile: values.outfile as string,
    ...(values.target ? { target: values.target as Bun.Build.CompileTarget } : {}),
    // The binary reads its configuration through orch's own resolver only: no .env or bunfig.toml from the cwd.
    autoloadDotenv: false,
    autoloadBunfig: false,
  },
})
if (!result.success) {
  for (const log of result.logs) console.error(log)
  process.exit(1)
}
const size = (await Bun.file(values.outfile as string).size) / 1024 / 1024
console.error(`built ${values.outfile} (${size.toFixed(1)} MiB) in ${Math.round(performance.now() - started)} ms`)
