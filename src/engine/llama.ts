/**
 * Finding and loading node-llama-cpp, the engine of llamacpp pools. It is a native addon: it cannot live
 * inside the compiled `dist/orch`, so it is looked for, in order:
 *   1. the configured directory (a pool's `llamacpp.node_llama_cpp_path`, model-worker's `--engine-path`): DIR/node_modules/node-llama-cpp,
 *      or DIR itself when DIR is the package; when set, nowhere else is looked;
 *   2. beside the running binary: `$(dirname orch)/node_modules/node-llama-cpp` (what
 *      `npm install --prefix "$(dirname orch)" node-llama-cpp@VERSION` creates), or in a node_modules of a
 *      directory above it, as Node resolves packages;
 *   3. orch's own node_modules, when orch runs from its source.
 * The error when none is found says where it looked and the command that installs it.
 */
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import type * as NodeLlamaCpp from 'node-llama-cpp'
import { ExitCode, OrchError } from '../core/errors.ts'
import { isCompiled } from '../core/process.ts'

export type NodeLlamaCppModule = typeof NodeLlamaCpp

/** The version orch is built and tested with (its prebuilt binaries are inside npm packages). */
export const NODE_LLAMA_CPP_VERSION = '3.22.1'

export interface LoadedEngine {
  module: NodeLlamaCppModule
  /** The package directory it was loaded from, or "orch's node_modules". */
  from: string
  version: string
}

function packageDir(dir: string): string | undefined {
  for (const candidate of [join(dir, 'node_modules', 'node-llama-cpp'), dir]) {
    const manifest = join(candidate, 'package.json')
    if (!existsSync(manifest)) continue
    try {
      if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === 'node-llama-cpp') return candidate
    } catch {
      // not a package directory
    }
  }
  return undefined
}

function versionAt(dir: string): string {
  return String((JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version?: unknown }).version ?? 'unknown')
}

/** The command that installs node-llama-cpp where orch looks for it. */
export function installCommand(dir: string): string {
  return `npm install --prefix ${JSON.stringify(dir)} node-llama-cpp@${NODE_LLAMA_CPP_VERSION}`
}

/** Load node-llama-cpp from the configured directory, beside the binary, or orch's own dependencies. */
export async function loadNodeLlamaCpp(configured?: string): Promise<LoadedEngine> {
  const beside = dirname(process.execPath)
  const fail = (where: string[], cause?: unknown): never => {
    const target = configured ? resolve(configured) : beside
    throw new OrchError(`node-llama-cpp (the engine of llamacpp pools) could not be loaded; looked in ${where.join(', ')}`, {
      code: 'E_ENGINE_MISSING',
      exitCode: ExitCode.usage,
      hint: `install it with: ${installCommand(target)} (add --omit=optional and @node-llama-cpp/<platform> for CPU binaries only; docs/engine.md)`,
      cause,
    })
  }
  if (configured) {
    const dir = packageDir(resolve(configured))
    if (!dir) return fail([resolve(configured)])
    return importFrom(dir).catch((err) => fail([dir], err))
  }
  for (let at = beside; ; at = dirname(at)) {
    const dir = packageDir(join(at, 'node_modules', 'node-llama-cpp'))
    if (dir) return importFrom(dir).catch((err) => fail([dir], err))
    if (dirname(at) === at) break
  }
  if (isCompiled()) return fail([join(beside, 'node_modules')])
  try {
    const module = (await import('node-llama-cpp')) as NodeLlamaCppModule
    const own = dirname(dirname(Bun.resolveSync('node-llama-cpp', import.meta.dir)))
    return { module, from: own, version: versionAt(own) }
  } catch (err) {
    return fail([join(beside, 'node_modules'), "orch's node_modules"], err)
  }
}

async function importFrom(dir: string): Promise<LoadedEngine> {
  const module = (await import(pathToFileURL(join(dir, 'dist', 'index.js')).href)) as NodeLlamaCppModule
  return { module, from: dir, version: versionAt(dir) }
}
