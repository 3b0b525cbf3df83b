/**
 * docs/configuration.md, generated from the schema, its descriptions and the env table (by
 * scripts/gen-config-docs.ts; a test regenerates it in memory and compares, so it cannot go stale).
 */
import { ENV_VARS, type EnvVar, ORCH_OLLAMA_URL } from './env.ts'
import { MAX_CONFIG_BYTES } from './file.ts'
import { describeKeys, envVarsByKey, type KeyInfo } from './keys.ts'
import { UNAVAILABLE } from './unavailable.ts'

const PRECEDENCE = `## Where values come from

Lowest precedence first; each layer overrides the ones above it:

1. **Defaults** built into orch (the tables below). With no file at all, orch runs on defaults.
2. **The config file**: \`--config FILE\`, else \`$ORCH_CONFIG\`, else the first of \`./orch.yaml\`, \`./orch.yml\`,
   \`./orch.json\` in the working directory. A file named by \`--config\` or \`ORCH_CONFIG\` must exist.
3. **The environment overlay**: with \`--env NAME\` (or \`ORCH_ENV=NAME\`), \`orch.NAME.yaml\` (or \`.yml\`, \`.json\`)
   next to the base file (in the working directory when there is no base file) is merged over it: mappings
   merge key by key, lists (pools, backends, globs) replace the whole list. A named environment whose file
   is missing is an error.
4. **\`ORCH_*\` environment variables** (table below). An empty variable counts as unset.
5. **Command-line flags** (\`--log-level\`, \`--debug\`, and command flags that set config keys).

\`orch config show --sources\` prints every key with its value and the layer it came from, e.g.
\`server.port = 9097  (default)\`, \`(file orch.yaml:3)\`, \`(env ORCH_SERVER_PORT)\`, \`(flag)\`.

The state directory (sqlite store, worker logs) is \`--home DIR\`, else \`$ORCH_HOME\`, else \`./.orch\`,
resolved against the working directory. Relative paths inside the config (\`cache_path\`, \`export_path\`,
the batch roots) are kept as written and resolve against the working directory orch runs in.

## Files

YAML, or JSON (read by the same parser; \`//\` and \`/* */\` comments are allowed in \`.json\` files). For
safety, files over ${MAX_CONFIG_BYTES} bytes (1 MiB) are refused, YAML anchors and aliases (\`&x\`, \`*x\`) are
refused, and the keys \`__proto__\`, \`constructor\` and \`prototype\` are refused anywhere. Unknown keys are
errors, with a did-you-mean. A key written with no value (\`server:\` with every child commented out, or \`~\`)
counts as unset. \`orch config validate [FILE]\` lists every problem at once as
\`file:line:column: key.path: message\`; \`orch config init\` writes the commented example
(config/orch.example.yaml) with every key and its default.
`

const cell = (text: string) => text.replace(/\|/g, '\\|')
const code = (text: string) => (text ? `\`${text}\`` : '')

function keyRow(key: KeyInfo, env: Map<string, EnvVar>): string {
  const fallback = key.required ? 'required' : key.defaultText ? code(key.defaultText) : key.node === 'leaf' ? 'unset' : ''
  const variable = env.get(key.path)
  // A variable that sets one entry of a mapping (runtime.ollama) says which.
  const envText = variable ? `${code(variable.name)}${variable.path === key.path ? '' : ` (${code(variable.path ?? '')})`}` : ''
  return `| ${code(key.path)} | ${cell(key.type)} | ${cell(fallback)} | ${envText} | ${cell(key.description)} |`
}

function sectionDocs(top: KeyInfo, keys: KeyInfo[], env: Map<string, EnvVar>): string {
  const members = keys.filter((k) => k.path === top.path || k.path.startsWith(`${top.path}.`) || k.path.startsWith(`${top.path}[]`))
  const rows = members.map((k) => keyRow(k, env))
  return [
    `### \`${top.path}\``,
    '',
    top.description,
    '',
    '| Key | Type | Default | Env | Description |',
    '| --- | --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n')
}

function envDocs(): string {
  const rows = ENV_VARS.map((e) => `| ${code(e.name)} | ${e.path ? code(e.path) : '(not a key)'} | ${e.type} | ${cell(e.description)} |`)
  return [
    '## Environment variables',
    '',
    "Values are converted to the key's type: integers and numbers as written, booleans as `true/false`,",
    '`1/0`, `yes/no`, `on/off`, lists as comma-separated items. A value that does not fit is an error naming',
    'the variable and the key, e.g. `server.port: expected an integer 1-65535, got "abc" (from ORCH_SERVER_PORT)`.',
    `\`${ORCH_OLLAMA_URL}\` sets the \`url\` of the default backend (\`ollama\`, type \`ollama\`) when the configuration`,
    'lists no backends (`backends` absent or `[]`); when backends are listed it is ignored. An `ORCH_*` variable orch',
    'does not know is reported as a warning by `orch config show` and `orch config env`.',
    '',
    '| Variable | Key | Type | Description |',
    '| --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n')
}

function unavailableDocs(): string {
  const rows = UNAVAILABLE.map((rule) => {
    const refused = rule.values === undefined ? 'any value' : rule.values.map((value) => code(JSON.stringify(value))).join(', ')
    return `| ${code(rule.key)} | ${refused} | ${cell(rule.message)} |`
  })
  return [
    '## Not available in this version',
    '',
    'Some keys belong to features this version does not have (the Kafka event bus, autoscaling, per-model',
    'request defaults). Every key either changes what orch does or is refused: a value below, set in a config',
    'file, by an `ORCH_*` variable or by a flag, makes `orch config validate` and every command that reads the',
    'configuration (`orch serve` among them, before it listens) exit 2, naming the key, its `file:line` or the',
    'variable, and what to do instead. The defaults are never refused, so `{}` and the file `orch config init`',
    'writes are valid; keys that accept no value yet are written there commented out.',
    '',
    '| Key | Refused | Message |',
    '| --- | --- | --- |',
    ...rows,
    '',
  ].join('\n')
}

/** The whole of docs/configuration.md. */
export function renderConfigDocs(): string {
  const keys = describeKeys()
  const env = envVarsByKey()
  const tops = keys.filter((k) => !k.path.includes('.') && !k.path.includes('['))
  const grouped = tops.filter((k) => k.node !== 'leaf')
  const loose = tops.filter((k) => k.node === 'leaf')
  const parts = [
    '# Configuration',
    '',
    '<!-- Generated by `bun scripts/gen-config-docs.ts` from src/config/schema.ts and src/config/env.ts; do not edit. -->',
    '',
    PRECEDENCE,
    '## Keys',
    '',
    'Paths use `[]` for the items of a list and `<name>` for the keys of a mapping: `pools[].pool_size`,',
    '`models.<provider>.<model>.context`. Durations are seconds, or strings like `"90s"`, `"30m"`, `"1h"`, `"infinity"`.',
    '',
    '### Top-level settings',
    '',
    '| Key | Type | Default | Env | Description |',
    '| --- | --- | --- | --- | --- |',
    ...loose.map((k) => keyRow(k, env)),
    '',
    ...grouped.map((top) => sectionDocs(top, keys, env)),
    unavailableDocs(),
    envDocs(),
  ]
  return parts.join('\n')
}
