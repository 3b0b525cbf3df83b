import { describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import YAML from 'yaml'
import { MAX_CONFIG_BYTES, stripJsonComments } from '../../src/config/file.ts'
import { describeKeys } from '../../src/config/keys.ts'
import { resolveConfig, validateConfigFile } from '../../src/config/load.ts'
import { formatPath, type PathSegment } from '../../src/config/paths.ts'
import { type ConfigIssue, formatIssue } from '../../src/core/errors.ts'
import { configError, configWorkdirs } from '../helpers/config-files.ts'

const workdir = configWorkdirs('orch-config-')

const lines = (issues: ConfigIssue[]) => issues.map(formatIssue)

describe('resolveConfig: files and precedence', () => {
  test('no file at all: pure defaults, every source "default", home ./.orch', () => {
    const cwd = workdir()
    const resolved = resolveConfig({ cwd, env: {} })
    expect(resolved.files).toEqual([])
    expect(resolved.config.server.port).toBe(9097)
    expect(resolved.home).toBe(join(cwd, '.orch'))
    expect(Object.values(resolved.sources).every((s) => s.kind === 'default')).toBe(true)
    expect(resolved.sources['server.port']).toEqual({ kind: 'default' })
  })

  test('default < file < overlay < env < flag, with each source reported', () => {
    const cwd = workdir({
      'orch.yaml': 'logging:\n  level: warning\nserver:\n  port: 1111\n  host: 0.0.0.0\n',
      'orch.prod.yaml': '# prod\nserver:\n  port: 2222\n',
    })
    const file = resolveConfig({ cwd, env: {} })
    expect(file.config.server.port).toBe(1111)
    expect(file.sources['server.port']).toEqual({ kind: 'file', file: 'orch.yaml', line: 4 })
    expect(file.sources['server.body_limit_bytes']).toEqual({ kind: 'default' })

    const overlay = resolveConfig({ cwd, env: {}, envName: 'prod' })
    expect(overlay.files).toEqual([join(cwd, 'orch.yaml'), join(cwd, 'orch.prod.yaml')])
    expect(overlay.config.server).toMatchObject({ port: 2222, host: '0.0.0.0' }) // mappings merge key by key
    expect(overlay.sources['server.port']).toEqual({ kind: 'file', file: 'orch.prod.yaml', line: 3 })
    expect(overlay.sources['server.host']).toEqual({ kind: 'file', file: 'orch.yaml', line: 5 })

    const env = resolveConfig({ cwd, env: { ORCH_ENV: 'prod', ORCH_SERVER_PORT: '3333' } })
    expect(env.config.server.port).toBe(3333)
    expect(env.sources['server.port']).toEqual({ kind: 'env', variable: 'ORCH_SERVER_PORT' })

    const flag = resolveConfig({
      cwd,
      env: { ORCH_ENV: 'prod', ORCH_SERVER_PORT: '3333' },
      overrides: { 'server.port': '4444', 'logging.level': 'debug' },
    })
    expect(flag.config.server.port).toBe(4444) // a flag's string is coerced to the key's type
    expect(flag.sources['server.port']).toEqual({ kind: 'flag' })
    expect(flag.config.logging.level).toBe('debug')
  })

  test('an overlay replaces lists instead of merging them, and sources follow', () => {
    const cwd = workdir({
      'orch.yaml': 'pools:\n  - name: a\n    pool_size: 3\n  - name: b\n',
      'orch.dev.yaml': 'pools:\n  - name: c\n',
    })
    const resolved = resolveConfig({ cwd, env: {}, envName: 'dev' })
    expect(resolved.config.pools.map((p) => [p.name, p.pool_size])).toEqual([['c', 1]])
    expect(resolved.sources['pools[0].name']).toEqual({ kind: 'file', file: 'orch.dev.yaml', line: 2 })
    expect(resolved.sources['pools[0].pool_size']).toEqual({ kind: 'default' })
    expect(resolved.sources['pools[1].name']).toBeUndefined()
  })

  test('ORCH_CONFIG picks the file; --config wins over it; .yml and .json are found in cwd', () => {
    const cwd = workdir({ 'a.yaml': 'server: {port: 1001}', 'b.yaml': 'server: {port: 1002}' })
    expect(resolveConfig({ cwd, env: { ORCH_CONFIG: 'a.yaml' } }).config.server.port).toBe(1001)
    expect(resolveConfig({ cwd, env: { ORCH_CONFIG: 'a.yaml' }, configFile: 'b.yaml' }).config.server.port).toBe(1002)
    expect(resolveConfig({ cwd: workdir({ 'orch.yml': 'server: {port: 1003}' }), env: {} }).config.server.port).toBe(1003)
    expect(resolveConfig({ cwd: workdir({ 'orch.json': '{"server": {"port": 1004}}' }), env: {} }).config.server.port).toBe(1004)
  })

  test('a named file or environment that is missing is a ConfigError naming it', () => {
    const cwd = workdir({ 'orch.yaml': '' })
    expect(configError({ cwd, env: {}, configFile: 'nope.yaml' }).message).toBe('nope.yaml: config file not found')
    expect(configError({ cwd, env: { ORCH_CONFIG: 'gone.yaml' } }).message).toContain('gone.yaml: config file not found (from ORCH_CONFIG)')
    expect(configError({ cwd, env: {}, envName: 'staging' }).message).toContain(
      'environment "staging" has no config file: looked for orch.staging.yaml',
    )
    expect(configError({ cwd, env: {}, envName: '../etc/x' }).message).toContain('invalid environment name')
  })

  test('home: the home input, else ORCH_HOME, else ./.orch, resolved against cwd', () => {
    const cwd = workdir()
    expect(resolveConfig({ cwd, env: { ORCH_HOME: 'state' } }).home).toBe(join(cwd, 'state'))
    expect(resolveConfig({ cwd, env: { ORCH_HOME: 'state' }, home: '/var/orch' }).home).toBe('/var/orch')
  })

  test('env values are coerced by type: booleans, numbers, lists', () => {
    const resolved = resolveConfig({
      cwd: workdir(),
      env: {
        ORCH_CACHE_ENABLED: 'off',
        ORCH_MONITORING_INTERVAL_SECONDS: '2.5',
        ORCH_MONITORING_EXPORT_FORMATS: 'json, csv',
        ORCH_OLLAMA_CONCURRENCY: '6',
        ORCH_EMPTY: '',
      },
    })
    const infra = resolved.config.infrastructure_system
    expect(infra.llm_orchestration.caching.enabled).toBe(false)
    expect(infra.performance_monitoring.collection_interval_seconds).toBe(2.5)
    expect(infra.performance_monitoring.export_formats).toEqual(['json', 'csv'])
    expect(resolved.config.runtime.ollama?.concurrency).toBe(6)
    expect(resolved.sources['runtime.ollama.concurrency']).toEqual({ kind: 'env', variable: 'ORCH_OLLAMA_CONCURRENCY' })
    expect(resolved.warnings).toEqual(['unknown environment variable ORCH_EMPTY (orch config env lists them)'])
  })

  test('an empty variable counts as unset', () => {
    expect(resolveConfig({ cwd: workdir(), env: { ORCH_SERVER_PORT: '' } }).config.server.port).toBe(9097)
  })

  test('ORCH_OLLAMA_URL moves the default backend only when no backends are configured', () => {
    const moved = resolveConfig({ cwd: workdir(), env: { ORCH_OLLAMA_URL: 'http://gpu-box:11434' } })
    expect(moved.config.backends).toEqual([{ name: 'ollama', type: 'ollama', url: 'http://gpu-box:11434' }])
    expect(moved.sources['backends[0].url']).toEqual({ kind: 'env', variable: 'ORCH_OLLAMA_URL' })
    expect(moved.sources['backends[0].name']).toEqual({ kind: 'default' })
    const listed = workdir({ 'orch.yaml': 'backends:\n  - {name: vllm, type: openai, url: "http://10.0.0.2:8000/v1"}\n' })
    expect(resolveConfig({ cwd: listed, env: { ORCH_OLLAMA_URL: 'http://gpu-box:11434' } }).config.backends.map((b) => b.url)).toEqual([
      'http://10.0.0.2:8000/v1',
    ])
  })
})

describe('resolveConfig: problems', () => {
  test('a bad env value names the variable and the key', () => {
    const error = configError({ cwd: workdir(), env: { ORCH_SERVER_PORT: 'abc' } })
    expect(error.message).toBe('server.port: expected an integer 1-65535, got "abc" (from ORCH_SERVER_PORT)')
    expect(error.issues).toEqual([{ path: 'server.port', message: 'expected an integer 1-65535, got "abc" (from ORCH_SERVER_PORT)' }])
    expect(configError({ cwd: workdir(), env: { ORCH_EVENT_BUS: 'rabbitmq' } }).message).toContain('(from ORCH_EVENT_BUS)')
  })

  test('a flag for a key the schema does not have is reported', () => {
    expect(configError({ cwd: workdir(), env: {}, overrides: { 'server.prot': 1 } }).message).toContain(
      'server.prot: not a configuration key',
    )
    expect(configError({ cwd: workdir(), env: {}, overrides: { 'server.constructor': 1 } }).message).toContain('not a configuration key')
    expect(configError({ cwd: workdir(), env: {}, overrides: { '__proto__.x': 1 } }).message).toContain('not a configuration key')
  })

  test('a key written with no value counts as unset', () => {
    const cwd = workdir({ 'orch.yaml': 'server:\n  # port: 1\nheartbeat: ~\nlogging:\n  level: warning\n' })
    const resolved = resolveConfig({ cwd, env: {} })
    expect(resolved.config.server.port).toBe(9097)
    expect(resolved.config.heartbeat.enabled).toBe(true)
    expect(resolved.sources['server.port']).toEqual({ kind: 'default' })
    expect(resolved.sources['logging.level']).toEqual({ kind: 'file', file: 'orch.yaml', line: 5 })
  })

  test('issues carry the file and the line:column of the key, every one at once', () => {
    const cwd = workdir({
      'orch.yaml': ['server:', '  port: 99999', 'pools:', '  - name: a', '    pool_sise: 3', 'batch:', '  interval_seconds: soon', ''].join(
        '\n',
      ),
    })
    const error = configError({ cwd, env: {} })
    expect(lines(error.issues)).toEqual([
      'orch.yaml:2:3: server.port: expected an integer 1-65535, got 99999',
      'orch.yaml:5:5: pools[0].pool_sise: unknown key "pool_sise"; did you mean "pool_size"?',
      'orch.yaml:7:3: batch.interval_seconds: expected a positive integer, got "soon"',
    ])
    expect(error.details?.file).toBe('orch.yaml')
    expect(error.exitCode).toBe(2)
  })

  test('a problem in the overlay points into the overlay', () => {
    const cwd = workdir({ 'orch.yaml': 'server:\n  port: 1\n', 'orch.ci.yaml': '\n\nserver:\n  port: 0\n' })
    expect(lines(configError({ cwd, env: {}, envName: 'ci' }).issues)).toEqual([
      'orch.ci.yaml:4:3: server.port: expected an integer 1-65535, got 0',
    ])
  })

  test('YAML aliases and anchors are refused', () => {
    const cwd = workdir({ 'orch.yaml': 'base: &b {port: 1}\nserver: *b\n' })
    const messages = lines(configError({ cwd, env: {} }).issues)
    expect(messages).toContain('orch.yaml:1:10: base: YAML anchors are not allowed (&b); write the value out')
    expect(messages).toContain('orch.yaml:2:9: server: YAML aliases are not allowed (*b); write the value out')
  })

  test('__proto__, constructor and prototype keys are refused anywhere', () => {
    const cwd = workdir({ 'orch.yaml': '__proto__:\n  polluted: true\nserver:\n  constructor: 1\n' })
    const messages = lines(configError({ cwd, env: {} }).issues)
    expect(messages).toEqual([
      'orch.yaml:1:1: __proto__: key "__proto__" is not allowed',
      'orch.yaml:4:3: server.constructor: key "constructor" is not allowed',
    ])
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  test('files over 1 MiB are refused before they are parsed', () => {
    const cwd = workdir({ 'orch.yaml': `# ${'x'.repeat(MAX_CONFIG_BYTES)}\n` })
    expect(configError({ cwd, env: {} }).message).toMatch(
      /^orch\.yaml: file is \d+ bytes; config files over 1048576 bytes \(1 MiB\) are refused$/,
    )
  })

  test('broken YAML, duplicate keys and a non-mapping document are reported with a line', () => {
    expect(lines(configError({ cwd: workdir({ 'orch.yaml': 'server:\n  port: 1\n  port: 2\n' }), env: {} }).issues)[0]).toMatch(
      /^orch\.yaml:3:3: invalid YAML: Map keys must be unique/,
    )
    expect(lines(configError({ cwd: workdir({ 'orch.yaml': 'server: [1, 2\n' }), env: {} }).issues)[0]).toMatch(
      /^orch\.yaml:\d+:\d+: invalid YAML/,
    )
    expect(configError({ cwd: workdir({ 'orch.yaml': '- a\n- b\n' }), env: {} }).message).toContain(
      'expected a mapping of keys to values at the top level, got a list',
    )
  })

  test('JSON files may carry comments, and line numbers still point at the key', () => {
    const json = '{\n  // the port\n  "server": {\n    /* bad */ "port": "x"\n  }\n}\n'
    expect(lines(configError({ cwd: workdir({ 'orch.json': json }), env: {} }).issues)).toEqual([
      'orch.json:4:15: server.port: expected an integer 1-65535, got "x"',
    ])
    expect(stripJsonComments('{"url": "http://a//b"} // c')).toBe('{"url": "http://a//b"}     ')
  })
})

describe('validateConfigFile', () => {
  test('returns every problem and never throws for the content', () => {
    const cwd = workdir({ 'bad.yaml': 'server:\n  port: x\n  hots: y\nlogging:\n  level: loud\n' })
    const issues = validateConfigFile('bad.yaml', { cwd })
    expect(lines(issues)).toEqual([
      'bad.yaml:2:3: server.port: expected an integer 1-65535, got "x"',
      'bad.yaml:3:3: server.hots: unknown key "hots"; did you mean "host"?',
      'bad.yaml:5:3: logging.level: expected one of "debug", "info", "warning", "error", "none", got "loud"',
    ])
  })

  test('a missing file is an issue, not an exception; a good file has none', () => {
    const cwd = workdir({ 'good.yaml': 'server:\n  port: 8080\n' })
    expect(validateConfigFile('missing.yaml', { cwd })).toEqual([{ path: '', file: 'missing.yaml', message: 'file not found' }])
    expect(validateConfigFile('good.yaml', { cwd })).toEqual([])
  })
})

/**
 * Data holding `value` at a docs path (`pools[].heartbeat`, `models.<provider>.<model>`): a list item is
 * a pool-like `{name}` mapping, a `<name>` is a plain key. Returns the data and the real path.
 */
function dataAt(docsPath: string, value: unknown): { data: Record<string, unknown>; segments: PathSegment[] } {
  const data: Record<string, unknown> = {}
  const segments: PathSegment[] = []
  let at: Record<string, unknown> = data
  const parts = docsPath.split('.').map((part) => (part.startsWith('<') ? 'x1' : part))
  parts.forEach((part, i) => {
    const item = part.endsWith('[]')
    const key = item ? part.slice(0, -2) : part
    segments.push(key)
    const last = i === parts.length - 1
    if (item) {
      const entry: Record<string, unknown> = { name: 'item0' }
      at[key] = [entry]
      segments.push(0)
      at = entry
    } else if (last) {
      at[key] = value
    } else {
      const next: Record<string, unknown> = {}
      at[key] = next
      at = next
    }
  })
  return { data, segments }
}

describe('a list or a scalar where a mapping belongs', () => {
  // Every mapping the schema has: sections, mappings of names to settings, and environment maps.
  const mappings = describeKeys().filter(
    (k) => k.node === 'section' || (k.node === 'collection' && k.type.startsWith('mapping')) || k.kind === 'map',
  )

  test('the schema has the mappings this test walks', () => {
    expect(mappings.map((k) => k.path)).toEqual(
      expect.arrayContaining([
        'server',
        'logging.categories',
        'models',
        'models.<provider>.<model>',
        'runtime',
        'pools[].heartbeat',
        'pools[].env',
      ]),
    )
  })

  for (const key of mappings) {
    test(`${key.path}: a list is refused by validate and by the resolver alike, naming the key`, () => {
      const { data, segments } = dataAt(key.path, [1, 2])
      const cwd = workdir({ 'orch.yaml': YAML.stringify(data) })
      const validated = validateConfigFile('orch.yaml', { cwd })
      const messages = lines(validated)
      expect(messages).toHaveLength(1)
      const [where, rest] = (messages[0] as string).split(`: ${formatPath(segments)}: `)
      expect(where).toMatch(/^orch\.yaml:\d+:\d+$/)
      expect(rest).toMatch(/^expected a mapping .*, got a list$/)
      // One verdict: the resolver (every command, serve among them) refuses with the very same issues.
      expect(configError({ cwd, env: {} }).issues).toEqual(validated)
    })
  }

  test('an empty list is refused too (it used to pass as an empty section, every key at its default)', () => {
    const cwd = workdir({ 'orch.yaml': 'server: []\n' })
    expect(lines(validateConfigFile('orch.yaml', { cwd }))).toEqual([
      'orch.yaml:1:1: server: expected a mapping of keys to values, got a list',
    ])
    expect(lines(configError({ cwd, env: {} }).issues)).toEqual(['orch.yaml:1:1: server: expected a mapping of keys to values, got a list'])
  })

  test('a list item given as a list, and a scalar section, are refused alike by both', () => {
    const cwd = workdir({ 'orch.yaml': 'pools:\n  - [1]\nbackends:\n  - [2]\nheartbeat: 5\n' })
    const validated = validateConfigFile('orch.yaml', { cwd })
    expect(lines(validated)).toEqual([
      'orch.yaml:2:5: pools[0]: expected a mapping of pool keys to values, got a list',
      expect.stringMatching(/^orch\.yaml:4:5: backends\[0\]: expected a mapping .*, got a list$/),
      'orch.yaml:5:1: heartbeat: expected a mapping of keys to values, got 5',
    ])
    expect(configError({ cwd, env: {} }).issues).toEqual(validated)
  })
})

describe('YAML tags', () => {
  const CORE = "config files are read with YAML's core schema (!!str, !!int, !!float, !!bool, !!null, !!seq, !!map); remove the tag"

  test('tags outside the core schema are refused with file:line:column, the key and the tag', () => {
    const text = [
      'server:',
      '  allowed_hosts: !!python/object/apply:os.system ["x"]',
      '  host: !custom 127.0.0.1',
      '  token: !!binary aGk=',
      'logging:',
      '  level: !!timestamp 2001-12-14',
      '',
    ].join('\n')
    const cwd = workdir({ 'orch.yaml': text })
    const expected = [
      `orch.yaml:2:18: server.allowed_hosts: YAML tag !!python/object/apply:os.system is not allowed: ${CORE}`,
      `orch.yaml:3:9: server.host: YAML tag !custom is not allowed: ${CORE}`,
      `orch.yaml:4:10: server.token: YAML tag !!binary is not allowed: ${CORE}`,
      `orch.yaml:6:10: logging.level: YAML tag !!timestamp is not allowed: ${CORE}`,
    ]
    expect(lines(validateConfigFile('orch.yaml', { cwd }))).toEqual(expected)
    expect(lines(configError({ cwd, env: {} }).issues)).toEqual(expected)
  })

  test('a %YAML 1.1 directive does not bring YAML 1.1 tags back; a core tag must fit its value', () => {
    const cwd = workdir({ 'orch.yaml': '%YAML 1.1\n---\nserver:\n  allowed_hosts: !!set {a}\n  port: !!float 1\n' })
    expect(lines(validateConfigFile('orch.yaml', { cwd }))).toEqual([
      `orch.yaml:4:18: server.allowed_hosts: YAML tag !!set is not allowed: ${CORE}`,
      'orch.yaml:5:9: server.port: YAML tag !!float does not fit its value; remove the tag or write a value of that type',
    ])
  })

  test('tags on keys and on the document are refused; other parser warnings are errors too', () => {
    expect(lines(validateConfigFile('orch.yaml', { cwd: workdir({ 'orch.yaml': '!k server: {}\n' }) }))).toEqual([
      `orch.yaml:1:1: server: YAML tag !k is not allowed: ${CORE}`,
    ])
    expect(lines(validateConfigFile('orch.yaml', { cwd: workdir({ 'orch.yaml': '--- !doc\nserver: {}\n' }) }))).toEqual([
      `orch.yaml:1:5: YAML tag !doc is not allowed: ${CORE}`,
    ])
    expect(lines(configError({ cwd: workdir({ 'orch.yaml': '%FOO bar\n---\nserver: {}\n' }), env: {} }).issues)).toEqual([
      'orch.yaml:1:1: invalid YAML: Unknown directive %FOO',
    ])
  })

  test("the core schema's own tags are read as before", () => {
    const cwd = workdir({ 'orch.yaml': 'server: !!map {port: !!int "8080", host: !!str 127.0.0.1, allowed_hosts: !!seq [! a]}\n' })
    expect(validateConfigFile('orch.yaml', { cwd })).toEqual([])
    const { server } = resolveConfig({ cwd, env: {} }).config
    expect([server.port, server.host, server.allowed_hosts]).toEqual([8080, '127.0.0.1', ['a']])
  })
})
