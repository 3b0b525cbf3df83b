/**
 * Regenerate the files derived from the config schema: config/orch.example.yaml and docs/configuration.md.
 * Run after changing src/config/schema.ts or src/config/env.ts: `bun scripts/gen-config-docs.ts`.
 * `--check` exits 1 when a committed file differs (for CI).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { renderConfigDocs } from '../src/config/docs.ts'
import { renderExampleConfig } from '../src/config/example.ts'

const ROOT = resolve(import.meta.dir, '..')

export const GENERATED: Record<string, () => string> = {
  'config/orch.example.yaml': renderExampleConfig,
  'docs/configuration.md': renderConfigDocs,
}

function main(check: boolean): number {
  let stale = 0
  for (const [path, render] of Object.entries(GENERATED)) {
    const file = join(ROOT, path)
    const text = render()
    const current = existsSync(file) ? readFileSync(file, 'utf8') : undefined
    if (current === text) continue
    if (check) {
      process.stderr.write(`${path} is out of date; run bun scripts/gen-config-docs.ts\n`)
      stale++
      continue
    }
    mkdirSync(dirname(file), { recursive: true })
    writeFileSync(file, text)
    process.stdout.write(`wrote ${path}\n`)
  }
  return stale > 0 ? 1 : 0
}

if (import.meta.main) process.exitCode = main(process.argv.includes('--check'))
