/**
 * Shared flag fragments and the small helpers every command uses: resolve the config from the global flags,
 * and print data to stdout (text or `--json`).
 */
import type { ArgsDef, CommandDef } from 'citty'
import { type ResolvedConfig, resolveConfig } from '../src/config/load.ts'
import { configureLogging } from '../src/log.ts'

/** Flags every command accepts, before or after its name. */
export const globalArgs = {
  config: {
    type: 'string',
    alias: 'c',
    valueHint: 'FILE',
    description: 'Config file, YAML or JSON (env ORCH_CONFIG; default ./orch.yaml if present)',
  },
  env: { type: 'string', valueHint: 'NAME', description: 'Merge orch.NAME.yaml over the base file (env ORCH_ENV)' },
  home: { type: 'string', valueHint: 'DIR', description: 'State directory (env ORCH_HOME; default ./.orch)' },
  json: { type: 'boolean', description: 'Print machine-readable JSON on stdout' },
  'log-level': { type: 'string', valueHint: 'LEVEL', description: 'debug | info | warning | error | none (env ORCH_LOG_LEVEL)' },
  debug: { type: 'boolean', description: 'Debug logs, and stack traces on errors' },
} as const satisfies ArgsDef

/** Global flags that take a value: the dispatcher skips their values when it looks for the command name. */
export const GLOBAL_VALUE_FLAGS = new Set(['--config', '-c', '--env', '--home', '--log-level'])

export interface GlobalArgValues {
  config?: string
  env?: string
  home?: string
  json?: boolean
  'log-level'?: string
  debug?: boolean
}

/** A citty command with worked examples for its `--help`. */
export type OrchCommand = CommandDef<any> & { examples?: string[] }

export function defineOrchCommand<const T extends ArgsDef>(
  def: CommandDef<T> & { examples?: string[] },
): CommandDef<T> & { examples?: string[] } {
  return def
}

/**
 * The one way a command gets its configuration: defaults < file < ORCH_* env < flags. `overrides` are the
 * command's own flags that set config keys, as dotted paths (`{ 'server.port': 8080 }`).
 */
export function loadConfig(args: GlobalArgValues, overrides: Record<string, unknown> = {}): ResolvedConfig {
  const flagOverrides: Record<string, unknown> = { ...overrides }
  if (args['log-level']) flagOverrides['logging.level'] = args['log-level']
  if (args.debug) flagOverrides['logging.level'] = 'debug'
  const resolved = resolveConfig({ configFile: args.config, envName: args.env, home: args.home, overrides: flagOverrides })
  configureLogging(resolved.config.logging)
  return resolved
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`)
}

export function printText(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`)
}
