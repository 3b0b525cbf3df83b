/**
 * Build the single-file binary: dist/orch. `--bytecode` (faster cold start) requires ESM output.
 * Usage: bun scripts/build.ts [--target bun-linux-x64] [--outfile dist/orch]
 *
 * Cold start: with `splitting`, every `import()` is a chunk of its own inside the binary, evaluated when the
 * import runs. Without it the whole bundle (0.6 MB) is loaded at start, and `orch --help` took three times
 * as long as an empty compiled program; with it, `--help` loads commands/index.ts and the few modules it
 * imports statically (test/unit/build.test.ts keeps that set free of npm packages and Node built-ins).
 * `bun scripts/bench/cold-start.ts` measures it.
 */
import { rmSync } from 'node:fs'
import { parseArgs } from 'node:util'

/** The bundle of dist/orch, less what only a compiled build takes (bytecode, the executable). */
export const BUNDLE = {
  entrypoints: ['commands/index.ts'],
  target: 'bun',
  format: 'esm',
  minify: true,
  splitting: true,
  // A native addon cannot live inside the binary: dist/orch loads node-llama-cpp from beside it at run time
  // (src/engine/llama.ts).
  external: ['node-llama-cpp'],
} as const satisfies Bun.BuildConfig

if (import.meta.main) {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { target: { type: 'string' }, outfile: { type: 'string', default: 'dist/orch' } },
  })
  const outfile = values.outfile as string

  const started = performance.now()
  // The CLI as one script, embedded in the binary: llamacpp workers run it with the binary in bun mode, where
  // node-llama-cpp (outside the binary) can load its own dependencies (src/pool/self-launch.ts).
  const script = await Bun.build({ ...BUNDLE, entrypoints: [...BUNDLE.entrypoints], splitting: false })
  if (!script.success || !script.outputs[0]) {
    for (const log of script.logs) console.error(log)
    process.exit(1)
  }
  const cliScript = await script.outputs[0].text()
  const result = await Bun.build({
    ...BUNDLE,
    entrypoints: [...BUNDLE.entrypoints],
    define: { ORCH_CLI_BUNDLE: JSON.stringify(cliScript) },
    // The source map is embedded in the binary: stack traces (--debug) name the .ts files and lines.
    sourcemap: 'linked',
    bytecode: true,
    compile: {
      outfile,
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
  // Bun also writes one .map file per chunk next to the binary; the binary does not read them.
  for (const output of result.outputs) if (output.kind === 'sourcemap') rmSync(output.path, { force: true })
  const size = (await Bun.file(outfile).size) / 1024 / 1024
  console.error(`built ${outfile} (${size.toFixed(1)} MiB) in ${Math.round(performance.now() - started)} ms`)
}
