/**
 * Writing the files of `orch scale manifests --out DIR`: all of them or none. Existing files are checked
 * first, so a refusal leaves the directory as it was.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { UsageError } from '../core/errors.ts'
import type { ManifestFile } from './manifests-types.ts'

/** Writes the files under `dir`; returns their paths, as given (joined to `dir`). */
export function writeManifests(files: ManifestFile[], dir: string, force: boolean): string[] {
  const targets = files.map((f) => ({ path: join(dir, f.path), content: f.content }))
  const existing = targets.filter((t) => existsSync(t.path)).map((t) => t.path)
  if (existing.length > 0 && !force) {
    throw new UsageError(`not overwriting ${existing.length === 1 ? 'a file that exists' : 'files that exist'}: ${existing.join(', ')}`, {
      code: 'E_EXISTS',
      hint: 'pass --force to overwrite them, or --out DIR to write elsewhere',
      details: { existing },
    })
  }
  for (const t of targets) {
    mkdirSync(dirname(t.path), { recursive: true })
    writeFileSync(t.path, t.content)
  }
  return targets.map((t) => t.path)
}
