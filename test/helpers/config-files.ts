/** Temp working directories holding config files, and the ConfigError a resolution throws, for config tests. */
import { afterEach } from 'bun:test'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { type ConfigInputs, resolveConfig } from '../../src/config/load.ts'
import { ConfigError } from '../../src/core/errors.ts'
import { tempDir } from './cli.ts'

/** `workdir(files)`: a temp directory holding the files, removed after each test of the calling file. */
export function configWorkdirs(prefix: string): (files?: Record<string, string>) => string {
  const dirs: Array<{ cleanup: () => void }> = []
  afterEach(() => {
    for (const dir of dirs.splice(0)) dir.cleanup()
  })
  return (files = {}) => {
    const dir = tempDir(prefix)
    dirs.push(dir)
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(join(dir.path, name, '..'), { recursive: true })
      writeFileSync(join(dir.path, name), text)
    }
    return dir.path
  }
}

/** The ConfigError a resolution throws (fails the test when it does not throw one). */
export function configError(inputs: ConfigInputs): ConfigError {
  try {
    resolveConfig(inputs)
  } catch (error) {
    if (error instanceof ConfigError) return error
    throw error
  }
  throw new Error('expected a ConfigError')
}
