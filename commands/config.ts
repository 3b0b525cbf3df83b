/**
 * `orch config`: show the resolved configuration (and where each value came from), validate a file,
 * write the commented example, list the environment variables.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import YAML from 'yaml'
import { ENV_VARS, unknownVariables } from '../src/config/env.ts'
import { renderExampleConfig } from '../src/config/example.ts'
import { displayPath, locateBaseFile, type ResolvedConfig, validateConfigFile } from '../src/config/load.ts'
import { getPath, parsePath } from '../src/config/paths.ts'
import { describeSource } from '../src/config/provenance.ts'
import { ConfigError, type ConfigIssue, ExitCode, UsageError } from '../src/core/errors.ts'
import { logger } from '../src/core/log.ts'
import { defineOrchCommand, globalArgs, printJson, printText } from './_args.ts'
import { loadConfig } from './_config.ts'
import { formatTable } from './_table.ts'

/** Keys whose values are secrets: shown as set, never printed. */
const SECRET_KEYS = new Set(['server.token'])
const REDACTED = '<redacted>'

function redact(resolved: ResolvedConfig): ResolvedConfig['config'] {
  const config = structuredClone(resolved.config)
  if (config.server.token !== undefined) config.server.token = REDACTED
  return config
}

function sourceRows(resolved: ResolvedConfig) {
  const config = redact(resolved)
  return Object.entries(resolved.sources).map(([key, source]) => ({
    key,
    value: SECRET_KEYS.has(key) ? REDACTED : getPath(config, parsePath(key) ?? []),
    source,
  }))
}

const show = defineOrchCommand({
  meta: { name: 'show', description: 'Print the resolved configuration: defaults < file < ORCH_* env < flags' },
  args: {
    ...globalArgs,
    sources: { type: 'boolean', description: 'Print every key with its value and where it came from (default, file:line, env, flag)' },
  },
  examples: [
    'orch config show',
    'orch config show --json',
    'ORCH_SERVER_PORT=8080 orch config show --sources',
    'orch config show --env prod --sources',
  ],
  run({ args }) {
    const resolved = loadConfig(args)
    if (args.sources) {
      const rows = sourceRows(resolved)
      if (args.json) printJson(rows)
      else printText(rows.map((r) => `${r.key} = ${JSON.stringify(r.value)}  (${describeSource(r.source)})`).join('\n'))
      return
    }
    const config = redact(resolved)
    if (args.json) printJson(config)
    else printText(YAML.stringify(config))
  },
})

/** What to do next: a file that cannot be read has no keys to fix. */
function validateHint(issues: ConfigIssue[], shown: string): string {
  const fileLevel = issues.length === 1 && issues[0]?.path === '' && issues[0].line === undefined ? issues[0].message : undefined
  if (fileLevel === 'file not found') {
    const init = shown === 'orch.yaml' ? 'orch config init' : `orch config init --output ${shown}`
    return `${shown} does not exist: check the path, or create it with \`${init}\``
  }
  if (fileLevel === 'not a regular file') return `${shown} is not a file: pass the config file itself`
  if (fileLevel?.startsWith('cannot read the file'))
    return `${shown} cannot be read: check its permissions (orch reads it as the user running orch)`
  return 'fix the keys above; docs/configuration.md lists every key'
}

const validate = defineOrchCommand({
  meta: { name: 'validate', description: 'Check a config file and list every problem with file:line and key path' },
  args: {
    ...globalArgs,
    file: {
      type: 'positional',
      required: false,
      valueHint: 'FILE',
      description: 'File to check (default: the file orch would read: --config, ORCH_CONFIG, ./orch.yaml)',
    },
  },
  examples: ['orch config validate', 'orch config validate orch.prod.yaml', 'orch config validate --json'],
  run({ args }) {
    const cwd = process.cwd()
    const file = args.file ?? locateBaseFile({ configFile: args.config })
    if (file === undefined) {
      throw new UsageError('no config file to validate: none given, and no ./orch.yaml, ./orch.yml or ./orch.json here', {
        hint: 'pass FILE, or run `orch config init` to write one',
      })
    }
    const shown = displayPath(resolve(cwd, file), cwd)
    const issues = validateConfigFile(file)
    if (args.json) {
      printJson({ file: shown, ok: issues.length === 0, issues })
      return issues.length === 0 ? ExitCode.ok : ExitCode.usage
    }
    if (issues.length > 0) throw new ConfigError(issues, { details: { file: shown }, hint: validateHint(issues, shown) })
    printText(`${shown}: ok`)
    return ExitCode.ok
  },
})

const init = defineOrchCommand({
  meta: { name: 'init', description: 'Write the commented example config: every key, its default, a comment' },
  args: {
    ...globalArgs,
    output: { type: 'string', alias: 'o', valueHint: 'FILE', description: 'Where to write it (default ./orch.yaml)' },
    force: { type: 'boolean', description: 'Overwrite the file if it exists' },
  },
  examples: ['orch config init', 'orch config init --output config/orch.yaml', 'orch config init --force'],
  run({ args }) {
    const cwd = process.cwd()
    const target = resolve(cwd, args.output ?? 'orch.yaml')
    const shown = displayPath(target, cwd)
    if (existsSync(target) && !args.force) {
      throw new UsageError(`${shown} already exists; not overwriting it`, {
        code: 'E_EXISTS',
        hint: 'pass --force to overwrite, or --output FILE to write elsewhere',
      })
    }
    mkdirSync(dirname(target), { recursive: true })
    writeFileSync(target, renderExampleConfig())
    if (args.json) printJson({ file: shown, written: true })
    else printText(`wrote ${shown}; check it with: orch config validate ${shown}`)
  },
})

const env = defineOrchCommand({
  meta: { name: 'env', description: 'List the environment variables orch reads and the keys they set' },
  args: { ...globalArgs },
  examples: ['orch config env', 'orch config env --json'],
  run({ args }) {
    for (const warning of unknownVariables()) logger('config').warn(warning)
    if (args.json) {
      printJson(ENV_VARS.map((e) => ({ name: e.name, key: e.path ?? null, type: e.type, description: e.description })))
      return
    }
    const rows = ENV_VARS.map((e) => [e.name, e.path ?? '-', e.type, e.description])
    printText(formatTable([['VARIABLE', 'KEY', 'TYPE', 'DESCRIPTION'], ...rows], { columns: [undefined, undefined, { minWidth: 8 }] }))
  },
})

export default defineOrchCommand({
  meta: { name: 'config', description: 'Show, validate and create the configuration' },
  subCommands: { show, validate, init, env },
  examples: ['orch config init && orch config validate', 'orch config show --sources', 'orch config env'],
})
