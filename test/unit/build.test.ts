import { describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { BUNDLE } from '../../scripts/build.ts'
import { ROOT } from '../helpers/cli.ts'

interface Metafile {
  inputs: Record<string, { imports: { path: string; kind: string; external?: boolean }[] }>
  outputs: Record<string, { entryPoint?: string; inputs: Record<string, unknown>; imports: { path: string; kind: string }[] }>
}

/** dist/orch's bundle (as scripts/build.ts makes it, less bytecode and the executable), with its metafile. */
async function bundle(): Promise<Metafile> {
  const result = await Bun.build({ ...BUNDLE, entrypoints: BUNDLE.entrypoints.map((e) => join(ROOT, e)), metafile: true })
  if (!result.success) throw new AggregateError(result.logs, 'the bundle did not build')
  return result.metafile as unknown as Metafile
}

/** The output chunks a chunk loads before its code runs: itself and its static imports, transitively. */
function eagerChunks(meta: Metafile, from: string): string[] {
  const seen = new Set<string>()
  const visit = (name: string) => {
    if (seen.has(name)) return
    seen.add(name)
    for (const i of meta.outputs[name]?.imports ?? []) if (i.kind === 'import-statement') visit(i.path)
  }
  visit(from)
  return [...seen]
}

describe('the compiled binary starts lean', () => {
  test('orch --help and --version evaluate no npm package and no Node built-in: commands load in their own chunks', async () => {
    const meta = await bundle()
    const entry = Object.keys(meta.outputs).find((name) => meta.outputs[name]?.entryPoint?.endsWith('commands/index.ts'))
    expect(entry).toBeDefined()
    const eager = eagerChunks(meta, entry as string)
    const inputs = eager.flatMap((name) => Object.keys(meta.outputs[name]?.inputs ?? {}))
    // What the start-up path is made of (so that the checks below cannot pass on an empty list).
    expect(inputs.some((i) => i.endsWith('commands/index.ts'))).toBe(true)
    expect(inputs.some((i) => i.endsWith('src/core/errors.ts'))).toBe(true)

    expect(inputs.filter((i) => i.includes('node_modules/'))).toEqual([])
    const builtins = inputs.flatMap((i) =>
      (meta.inputs[i]?.imports ?? []).filter((x) => x.external && x.kind === 'import-statement').map((x) => `${i} → ${x.path}`),
    )
    expect(builtins).toEqual([])
    expect(inputs.filter((i) => /commands\/(?!index\.ts$|_args\.ts$)/.test(i))).toEqual([])

    // The commands and the argument parser are there, behind import().
    const lazy = Object.entries(meta.outputs)
      .filter(([name]) => !eager.includes(name))
      .flatMap(([, output]) => Object.keys(output.inputs))
    for (const module of ['commands/serve.ts', 'commands/tasks.ts', 'node_modules/citty/', 'node_modules/consola/']) {
      expect(lazy.some((i) => i.includes(module))).toBe(true)
    }
  })
})
