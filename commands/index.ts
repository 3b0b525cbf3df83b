#!/usr/bin/env -S bun --no-env-file
/**
 * orch's entry point (and the compiled binary's). It resolves the command chain itself, so that `--help`
 * for the root loads no command module (cold start), unknown commands and flags get a did-you-mean with
 * exit 2, and every error becomes one message, a hint and the right exit code.
 *
 * Cold start: the static imports below are all that `orch --help` and `orch --version` evaluate. Keep them
 * free of npm packages and of Node built-ins that load more of the runtime: `node:tty` alone (through
 * src/core/color.ts) costs about as much as the runtime's own start, so color.ts is imported where it is
 * used. scripts/bench/cold-start.ts measures it.
 */
import type { ArgsDef, CommandDef } from 'citty'
import pkg from '../package.json' with { type: 'json' }
import { didYouMean, ExitCode, OrchError, UsageError } from '../src/core/errors.ts'
import { checkPositionals, GLOBAL_VALUE_FLAGS, npmSwallowedHint, type OrchCommand, printJson, printText } from './_args.ts'

interface CommandEntry {
  description: string
  load: () => Promise<{ default: OrchCommand }>
}

/** Only what works is registered; later commands join this map. */
const COMMANDS: Record<string, CommandEntry> = {
  serve: {
    description: 'Run the HTTP control plane: task queue, scheduler, Ollama/OpenAI-compatible API',
    load: () => import('./serve.ts'),
  },
  worker: {
    description: "Run a cluster's durable tasks on this machine, taking them from Redis (docs/scaling.md)",
    load: () => import('./worker.ts'),
  },
  stop: { description: 'Stop the orch serve of this state directory (foreground or --detach)', load: () => import('./stop.ts') },
  status: { description: 'Is orch serve running? Its URL, uptime, queue and backends', load: () => import('./status.ts') },
  logs: { description: 'Show (and follow) the logs of orch serve and its workers', load: () => import('./logs.ts') },
  tasks: { description: 'Submit, inspect, cancel and watch durable tasks of a running orch serve', load: () => import('./tasks.ts') },
  workflows: { description: 'Create, run and schedule workflows (DAGs of tasks, cron)', load: () => import('./workflows.ts') },
  capacity: {
    description: 'How many instances a workload needs (formula, headroom, Erlang C queueing)',
    load: () => import('./capacity.ts'),
  },
  scale: {
    description: 'Deployment manifests (docker-compose, Kubernetes) for a cluster; the autoscaler of a running serve',
    load: () => import('./scale.ts'),
  },
  config: { description: 'Show, validate and create the configuration', load: () => import('./config.ts') },
  'model-worker': {
    description: "Load a GGUF model (node-llama-cpp) and serve Ollama's API for it; what llamacpp pools run",
    load: () => import('./model-worker.ts'),
  },
  pool: { description: 'Supervise local model-server processes (Ollama, llama.cpp, any command)', load: () => import('./pool.ts') },
  batch: { description: 'Score folders of cloud metric JSON: run, tick, schedule, status, reset', load: () => import('./batch.ts') },
  doctor: { description: 'Check the machine and the configuration, with the fix for each problem', load: () => import('./doctor.ts') },
  cache: { description: 'Inspect and empty the LLM response cache', load: () => import('./cache.ts') },
}

const ROOT_HELP = `orch ${pkg.version} — run LLM agent workloads on one machine, and scale out when one is not enough

Usage: orch <command> [flags]

Commands:
${Object.entries(COMMANDS)
  .map(([name, entry]) => `  ${name.padEnd(12)}${entry.description}`)
  .join('\n')}

Global flags (accepted by every command, before or after its name):
  -c, --config FILE   Config file, YAML or JSON (env ORCH_CONFIG; default ./orch.yaml if present)
      --env NAME      Merge orch.NAME.yaml over the base file (env ORCH_ENV)
      --home DIR      State directory (env ORCH_HOME; default ./.orch)
      --json          Machine-readable JSON on stdout (logs always go to stderr)
      --log-level L   debug | info | warning | error | none (env ORCH_LOG_LEVEL)
      --debug         Debug logs, and stack traces on errors
  -h, --help          Help for orch or for a command
  -v, --version       Print the version

Examples:
  orch serve                               # 127.0.0.1:9097 in front of Ollama at 127.0.0.1:11434
  orch serve --detach && orch status       # in the background; orch logs -f, orch stop
  orch tasks submit --type generate --model llama3.2 --prompt "hi" --wait
  orch capacity --tasks 100 --duration 6m --concurrency 2
  orch config init && orch config validate

Exit codes: 0 ok, 1 runtime failure, 2 usage or config error, 130 interrupted.
`

const isHelp = (token: string) => token === '--help' || token === '-h'

/** Index of the first token that is not a flag (nor the value of a global flag that takes one). */
function findCommandToken(argv: string[]): number {
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] as string
    if (token === '--') return -1
    if (!token.startsWith('-')) return i
    if (GLOBAL_VALUE_FLAGS.has(token)) i++
  }
  return -1
}

async function resolveValue<T>(value: T | Promise<T> | (() => T | Promise<T>)): Promise<T> {
  return typeof value === 'function' ? await (value as () => T | Promise<T>)() : await value
}

/** Walk nested subcommands: `config validate x.yaml` → the `validate` command with `[x.yaml]`. */
async function resolveChain(
  command: OrchCommand,
  argv: string[],
  path: string[],
): Promise<{ command: OrchCommand; argv: string[]; path: string[] }> {
  const subCommands = (await resolveValue(command.subCommands)) as Record<string, OrchCommand | (() => Promise<OrchCommand>)> | undefined
  if (!subCommands || Object.keys(subCommands).length === 0) return { command, argv, path }
  const index = findCommandToken(argv)
  if (index < 0) return { command, argv, path }
  const name = argv[index] as string
  const found = subCommands[name]
  if (!found) {
    if (command.run) return { command, argv, path }
    throw unknownCommand(name, Object.keys(subCommands), path)
  }
  const rest = [...argv.slice(0, index), ...argv.slice(index + 1)]
  return resolveChain(await resolveValue(found), rest, [...path, name])
}

function unknownCommand(name: string, candidates: string[], path: string[]): UsageError {
  const guess = didYouMean(name, candidates)
  const where = ['orch', ...path].join(' ')
  return new UsageError(`unknown command "${name}" for "${where}"${guess ? `; did you mean "${guess}"?` : ''}`, {
    code: 'E_UNKNOWN_COMMAND',
    hint: `run \`${where} --help\` for the list of commands`,
  })
}

/** citty ignores unknown flags; a typo must not be silently dropped. */
function checkFlags(args: ArgsDef, argv: string[], path: string[]): void {
  const known = new Map<string, ArgsDef[string]>()
  for (const [name, def] of Object.entries(args)) {
    known.set(name, def)
    for (const alias of ['alias' in def ? (def.alias ?? []) : []].flat()) known.set(alias, def)
    known.set(
      name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()),
      def,
    )
  }
  for (const token of argv) {
    if (token === '--') break
    if (!token.startsWith('-') || token === '-' || /^-\d/.test(token)) continue
    let name = token.replace(/^--?/, '').split('=')[0] as string
    if (name.startsWith('no-') && known.get(name.slice(3))?.type === 'boolean') name = name.slice(3)
    if (known.has(name)) continue
    const guess = didYouMean(
      name,
      [...known.keys()].filter((k) => k.length > 1),
    )
    throw new UsageError(`unknown flag "${token}" for "orch ${path.join(' ')}"${guess ? `; did you mean "--${guess}"?` : ''}`, {
      code: 'E_UNKNOWN_FLAG',
      hint: `run \`orch ${path.join(' ')} --help\` for its flags`,
    })
  }
}

/** citty's usage, without the flags marked `hidden` and, where colour is not allowed on stdout, plain. */
async function renderHelp(command: OrchCommand, path: string[]): Promise<string> {
  const [{ renderUsage }, { colorAllowed, stripAnsi }] = await Promise.all([import('citty'), import('../src/core/color.ts')])
  const meta = await resolveValue(command.meta)
  const args = Object.fromEntries(
    Object.entries((await resolveValue(command.args ?? {})) as ArgsDef).filter(([, def]) => !(def as { hidden?: boolean }).hidden),
  )
  const named = { ...command, args, meta: { ...meta, name: ['orch', ...path].join(' ') } } as CommandDef
  let text = await renderUsage(named)
  if (!colorAllowed(1)) text = stripAnsi(text)
  if (command.examples?.length) text += `\n\nExamples:\n${command.examples.map((e) => `  ${e}`).join('\n')}`
  return `${text}\n`
}

export async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || (argv.length === 1 && isHelp(argv[0] as string))) {
    printText(ROOT_HELP)
    return ExitCode.ok
  }
  if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-v')) {
    printText(pkg.version)
    return ExitCode.ok
  }
  const index = findCommandToken(argv)
  if (index < 0) {
    if (argv.some(isHelp)) {
      printText(ROOT_HELP)
      return ExitCode.ok
    }
    throw new UsageError('no command given', { hint: 'run `orch --help` for the list of commands' })
  }
  const name = argv[index] as string
  const entry = COMMANDS[name]
  if (!entry) throw unknownCommand(name, Object.keys(COMMANDS), [])
  const top = (await entry.load()).default
  const rest = [...argv.slice(0, index), ...argv.slice(index + 1)]
  const { command, argv: leafArgv, path } = await resolveChain(top, rest, [name])
  if (leafArgv.some(isHelp) || !command.run) {
    printText(await renderHelp(command, path))
    return command.run || leafArgv.some(isHelp) ? ExitCode.ok : ExitCode.usage
  }
  const args = await resolveValue(command.args ?? {})
  checkFlags(args, leafArgv, path)
  const { parseArgs, runCommand } = await import('citty')
  try {
    checkPositionals(args, parseArgs(leafArgv, args)._, path)
    const { result } = await runCommand(command, { rawArgs: leafArgv })
    return typeof result === 'number' ? result : ExitCode.ok
  } catch (error) {
    // citty reports missing or invalid arguments as CLIError with code EARG.
    if (error instanceof Error && error.name === 'CLIError') {
      const { stripAnsi } = await import('../src/core/color.ts')
      throw new UsageError(stripAnsi(error.message), { hint: npmSwallowedHint(args, path, []) ?? `run \`orch ${path.join(' ')} --help\`` })
    }
    // A flag the command needs, missing because npm kept it: the fix is the npm command line, not the flag.
    const npm = error instanceof UsageError && error.code === 'E_USAGE' ? npmSwallowedHint(args, path, []) : undefined
    if (npm) throw new UsageError((error as UsageError).message, { hint: npm, cause: error })
    throw error
  }
}

function report(error: unknown, argv: string[]): number {
  const debug = argv.includes('--debug')
  const json = argv.includes('--json')
  const known = error instanceof OrchError
  const message = error instanceof Error ? error.message : String(error)
  if (json) {
    const payload = known ? error.toJSON() : { code: 'E_INTERNAL', message }
    printJson({ error: payload })
  }
  // console.error, not process.stderr.write: the first touch of process.stderr costs as much as the runtime's
  // own start in a compiled binary (see printText in _args.ts); a usage error should answer as fast as --help.
  console.error(`error: ${known ? message : `internal error: ${message}`}`)
  if (known && error.hint) console.error(`hint: ${error.hint}`)
  if (debug && error instanceof Error && error.stack) console.error(error.stack)
  else if (!known) console.error('hint: run again with --debug for the stack trace, and report it')
  return known ? error.exitCode : ExitCode.failure
}

if (import.meta.main) {
  const argv = process.argv.slice(2)
  // A command that owns long-running work installs its own handlers; this is the default.
  process.once('SIGINT', () => process.exit(ExitCode.interrupted))
  main(argv).then(
    (code) => {
      process.exitCode = code
    },
    (error: unknown) => {
      process.exitCode = report(error, argv)
    },
  )
}
