/**
 * Shared flag fragments and print helpers. Kept free of heavy imports: the dispatcher loads this module on
 * every start, `--help` included. Config loading lives in `_config.ts`.
 */
import type { ArgsDef, CommandDef } from 'citty'
import { UsageError } from '../src/core/errors.ts'

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
export const GLOBAL_VALUE_FLAGS = new Set(
  Object.entries(globalArgs as ArgsDef).flatMap(([name, def]) =>
    def.type === 'string' ? [`--${name}`, ...('alias' in def && typeof def.alias === 'string' ? [`-${def.alias}`] : [])] : [],
  ),
)

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

type Env = Record<string, string | undefined>

/** The npm variable a flag given to `npm run` ends up in: `--log-level` → `npm_config_log_level`. */
const npmVariable = (flag: string) => `npm_config_${flag.replace(/-/g, '_')}`

/**
 * When orch runs as an npm script and the user left out the `--` after the script name, npm keeps the
 * flags for itself (it sets `npm_config_<flag>=true` for each) and hands orch only their values: say so,
 * with the command line that works. Undefined when that is not what happened.
 */
export function npmSwallowedHint(args: ArgsDef, path: string[], strays: string[], env: Env = process.env): string | undefined {
  const script = env.npm_lifecycle_event
  if (!script) return undefined
  const flags = Object.entries(args).filter(([name, def]) => def.type !== 'positional' && env[npmVariable(name)] !== undefined)
  if (flags.length === 0) return undefined
  // The `orch` script is the bare CLI, so the command goes after the `--`; another script names its own.
  const command = script === 'orch' ? ` ${path.join(' ')}` : ''
  const only = flags.length === 1 && strays.length === 1 ? flags[0] : undefined
  const shown =
    only && only[1].type === 'string'
      ? ` --${only[0]} ${strays[0]}`
      : flags.map(([name, def]) => (def.type === 'boolean' ? ` --${name}` : ` --${name} …`)).join('')
  const names = flags.map(([name]) => `--${name}`).join(', ')
  return `npm kept ${names} for itself (npm run needs -- before the flags it should pass on): npm run ${script} --${command}${shown}`
}

/** A guess at the flag a stray argument was meant for: a bare number where the command has --port. */
function strayGuess(args: ArgsDef, stray: string): string | undefined {
  if ('port' in args && /^\d{1,5}$/.test(stray) && Number(stray) <= 65535) return `--port ${stray}`
  return undefined
}

/**
 * citty keeps arguments beyond the declared positionals in `_` and nobody reads them: `orch serve 9111`
 * would listen on the default port. Refuse them (exit 2), naming each, with the likely intent.
 */
export function checkPositionals(args: ArgsDef, positionals: string[], path: string[], env: Env = process.env): void {
  const declared = Object.values(args).filter((def) => def.type === 'positional').length
  const strays = positionals.slice(declared)
  if (strays.length === 0) return
  const where = ['orch', ...path].join(' ')
  const named = strays.map((s) => `"${s}"`).join(', ')
  const npm = npmSwallowedHint(args, path, strays, env)
  const guess = npm === undefined && strays.length === 1 ? strayGuess(args, strays[0] as string) : undefined
  const message = `${where}: unexpected argument${strays.length > 1 ? 's' : ''} ${named}${guess ? ` (did you mean ${guess}?)` : ''}`
  throw new UsageError(message, {
    code: 'E_UNEXPECTED_ARGUMENT',
    hint: npm ?? `run \`${where} --help\` for its arguments and flags`,
    details: { arguments: strays },
  })
}

/**
 * Data to stdout. console.log, not process.stdout.write: in a compiled binary, first touching
 * process.stdout costs ~11 ms of start-up (measured), console.log ~1 ms; both write synchronously.
 */
export function printText(text: string): void {
  console.log(text.endsWith('\n') ? text.slice(0, -1) : text)
}

export function printJson(value: unknown): void {
  printText(JSON.stringify(value, null, 2))
}
