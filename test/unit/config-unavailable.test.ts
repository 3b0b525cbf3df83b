import { describe, expect, test } from 'bun:test'
import YAML from 'yaml'
import { ENV_VARS } from '../../src/config/env.ts'
import { EXAMPLE_ITEMS, renderExampleConfig } from '../../src/config/example.ts'
import { describeKeys, docPath } from '../../src/config/keys.ts'
import { resolveConfig, validateConfigFile } from '../../src/config/load.ts'
import { parsePath } from '../../src/config/paths.ts'
import { defaultConfig } from '../../src/config/schema.ts'
import { UNAVAILABLE, type UnavailableRule, unavailableIssues } from '../../src/config/unavailable.ts'
import { type ConfigIssue, formatIssue } from '../../src/core/errors.ts'
import { configError, configWorkdirs } from '../helpers/config-files.ts'

const workdir = configWorkdirs('orch-unavailable-')

const lines = (issues: ConfigIssue[]) => issues.map(formatIssue)
const KEYS = new Map(describeKeys().map((k) => [k.path, k]))
const DISTRIBUTED = 'infrastructure_system.distributed_simulation'

/** A value the rule refuses: one of its values, else the key's default (every rule refusing any value has one). */
function refusedValue(rule: UnavailableRule): unknown {
  return rule.values ? rule.values[0] : KEYS.get(rule.key)?.default
}

/** YAML setting `value` at a docs path (a list item gets `name: item0`, a `<name>` is `x`), and the key's line. */
function yamlAt(docsPath: string, value: unknown): { text: string; line: number } {
  const parts = docsPath.split('.').map((part) => (part.startsWith('<') ? 'x' : part))
  const out: string[] = []
  let indent = ''
  parts.forEach((part, i) => {
    const key = part.replace(/\[\]$/, '')
    if (i === parts.length - 1) out.push(`${indent}${key}: ${JSON.stringify(value)}`)
    else if (part.endsWith('[]')) {
      out.push(`${indent}${key}:`, `${indent}  - name: item0`)
      indent += '    '
    } else {
      out.push(`${indent}${key}:`)
      indent += '  '
    }
  })
  return { text: `${out.join('\n')}\n`, line: out.length }
}

describe('values for features this version does not have are refused', () => {
  test.each(UNAVAILABLE.map((rule) => [`${rule.key}: ${JSON.stringify(refusedValue(rule))}`, rule] as const))(
    '%s in a file: refused at its file:line with what to do instead, by the resolver and by validate alike',
    (_, rule) => {
      const value = refusedValue(rule)
      const { text, line } = yamlAt(rule.key, value)
      const cwd = workdir({ 'orch.yaml': text })
      const error = configError({ cwd, env: {} })
      expect(error.issues).toHaveLength(1)
      const issue = error.issues[0] as ConfigIssue
      expect(docPath(parsePath(issue.path) ?? [])).toBe(rule.key)
      expect(issue).toMatchObject({ file: 'orch.yaml', line, message: rule.message })
      expect(rule.message).toContain('not available in this version')
      expect(validateConfigFile('orch.yaml', { cwd })).toEqual(error.issues)
    },
  )

  test('the messages say what to use instead', () => {
    const message = (key: string, value: unknown) => UNAVAILABLE.find((r) => r.key === key && r.values?.includes(value))?.message
    expect(message(`${DISTRIBUTED}.event_bus_type`, 'kafka')).toContain(
      'orch has no Kafka bus, as it could not be tested without a Kafka server; use local_memory',
    )
    expect(message('heartbeat.dependent', false)).toContain('a worker always stops when the orch process supervising it ends')
  })

  test('an ORCH_* variable setting a refused value is refused naming the variable', () => {
    const cases: Record<string, string> = { ORCH_EVENT_BUS: 'kafka' }
    for (const [variable, value] of Object.entries(cases)) {
      const row = ENV_VARS.find((e) => e.name === variable)
      const error = configError({ cwd: workdir(), env: { [variable]: value } })
      expect(error.issues.map((i) => i.path)).toEqual([row?.path ?? '?'])
      expect(error.message).toContain(`not available in this version`)
      expect(error.message).toEndWith(`(from ${variable})`)
    }
    expect(configError({ cwd: workdir(), env: { ORCH_EVENT_BUS: 'kafka' } }).message).toBe(
      `${DISTRIBUTED}.event_bus_type: "kafka" is not available in this version: orch has no Kafka bus, as it could not be tested without a Kafka server; use local_memory (from ORCH_EVENT_BUS)`,
    )
  })

  test('a flag setting a refused value is refused naming the flag', () => {
    const error = configError({ cwd: workdir(), env: {}, overrides: { [`${DISTRIBUTED}.event_bus_type`]: 'kafka' } })
    expect(error.message).toContain('event_bus_type: "kafka" is not available in this version')
    expect(error.message).toEndWith('(from a command-line flag)')
  })

  test('every problem at once: schema problems and refused values, a key refused by the schema said once', () => {
    const text = ['server:', '  port: 99999', 'infrastructure_system:', '  distributed_simulation:', '    event_bus_type: kafka']
    text.push('    redis_port: 70000', '  resource_management:', '    min_agent_runners: 5', '    max_agent_runners: 2', '')
    const cwd = workdir({ 'orch.yaml': text.join('\n') })
    expect(lines(configError({ cwd, env: {} }).issues)).toEqual([
      'orch.yaml:2:3: server.port: expected an integer 1-65535, got 99999',
      `orch.yaml:5:5: ${DISTRIBUTED}.event_bus_type: "kafka" is not available in this version: orch has no Kafka bus, as it could not be tested without a Kafka server; use local_memory`,
      `orch.yaml:6:5: ${DISTRIBUTED}.redis_port: expected an integer 1-65535, got 70000`,
      'orch.yaml:8:5: infrastructure_system.resource_management.min_agent_runners: must be <= max_agent_runners (2)',
    ])
  })
})

describe('what is not refused', () => {
  test('{} and no file at all: the defaults are never refused', () => {
    expect(resolveConfig({ cwd: workdir(), env: {} }).config).toEqual(defaultConfig())
    expect(resolveConfig({ cwd: workdir({ 'orch.yaml': '{}\n' }), env: {} }).config).toEqual(defaultConfig())
    expect(validateConfigFile('orch.yaml', { cwd: workdir({ 'orch.yaml': '{}\n' }) })).toEqual([])
  })

  test('the values orch does act on, written out explicitly, are accepted', () => {
    const text = [
      'infrastructure_system:',
      '  distributed_simulation: {enabled: false, event_bus_type: local_memory, orchestrator_mode: auto}',
      '  llm_orchestration: {caching: {cache_backend: memory}}',
      '  resource_management: {auto_scaling_enabled: false}',
      '  performance_monitoring: {integrations: {grafana_prometheus: {enabled: true, endpoint: "http://prometheus:9090"}}}',
      'heartbeat: {dependent: true}',
      'models: {ollama: {llama3.2: {context: 16384, temperature: 0, parallel: false}}, openai: {qwen2.5: {temperature: 0.4}}}',
      'pools: [{name: gpu, heartbeat: {dependent: true}}]',
      '',
    ].join('\n')
    const cwd = workdir({ 'orch.yaml': text })
    expect(validateConfigFile('orch.yaml', { cwd })).toEqual([])
    const { config } = resolveConfig({ cwd, env: { ORCH_AUTO_SCALING_ENABLED: 'false', ORCH_EVENT_BUS: 'local_memory' } })
    expect(config.pools).toHaveLength(1)
    expect(config.infrastructure_system.performance_monitoring.integrations.grafana_prometheus).toEqual({
      enabled: true,
      endpoint: 'http://prometheus:9090',
    })
    const fromEnv = resolveConfig({
      cwd: workdir(),
      env: { ORCH_PROMETHEUS_ENABLED: 'true', ORCH_PROMETHEUS_ENDPOINT: 'http://10.0.0.9:9090' },
    })
    expect(fromEnv.config.infrastructure_system.performance_monitoring.integrations.grafana_prometheus).toEqual({
      enabled: true,
      endpoint: 'http://10.0.0.9:9090',
    })
    expect(config.models).toEqual({
      ollama: { 'llama3.2': { context: 16384, temperature: 0, parallel: false } },
      openai: { 'qwen2.5': { temperature: 0.4, parallel: true } },
    })
  })

  test('a section written empty keeps its defaults, which are not refused', () => {
    const cwd = workdir({ 'orch.yaml': 'infrastructure_system:\n  resource_management: {}\n  distributed_simulation: {}\n' })
    expect(resolveConfig({ cwd, env: {} }).config.infrastructure_system.distributed_simulation.redis_host).toBe('localhost')
  })

  test('a refused value a higher layer replaces is no longer set, so no longer refused', () => {
    const cwd = workdir({
      'orch.yaml': `infrastructure_system: {distributed_simulation: {event_bus_type: kafka}}\n`,
      'orch.prod.yaml': `infrastructure_system: {distributed_simulation: {event_bus_type: local_memory}}\n`,
    })
    expect(configError({ cwd, env: {} }).message).toContain('"kafka" is not available')
    expect(resolveConfig({ cwd, env: {}, envName: 'prod' }).config.infrastructure_system.distributed_simulation.event_bus_type).toBe(
      'local_memory',
    )
    expect(resolveConfig({ cwd, env: { ORCH_EVENT_BUS: 'local_memory' } }).files).toHaveLength(1)
  })

  test('the default of a key that refuses some values is one it accepts', () => {
    for (const rule of UNAVAILABLE.filter((r) => r.values)) {
      const key = KEYS.get(rule.key)
      if (!key?.hasDefault) continue
      expect(`${rule.key} = ${JSON.stringify(key.default)} ${rule.values?.includes(key.default) ? 'refused' : 'accepted'}`).toBe(
        `${rule.key} = ${JSON.stringify(key.default)} accepted`,
      )
    }
  })

  test('orch config init writes no refused value, active or in its commented examples', () => {
    expect(unavailableIssues(YAML.parse(renderExampleConfig()), () => true)).toEqual([])
    expect(unavailableIssues(EXAMPLE_ITEMS, () => true)).toEqual([])
    const text = renderExampleConfig()
    expect(text).toMatch(/^ {4}min_agent_runners: 1$/m)
    expect(text).not.toContain('the seed says')
  })
})

describe('the schema and the env table say which keys are not available', () => {
  test('every refused key is a leaf whose description says "not available in this version"', () => {
    for (const rule of UNAVAILABLE) {
      const key = KEYS.get(rule.key)
      expect(`${rule.key}: ${key?.node}`).toBe(`${rule.key}: leaf`)
      expect(key?.description.toLowerCase()).toContain('not available in this version')
    }
  })

  test('every variable that sets a refused key says so', () => {
    const refused = new Set(UNAVAILABLE.map((r) => r.key))
    const rows = ENV_VARS.filter((e) => e.path !== undefined && refused.has(docPath(parsePath(e.path) ?? [])))
    expect(rows.map((e) => e.name).sort()).toEqual(['ORCH_EVENT_BUS'])
    for (const row of rows) expect(`${row.name}: ${row.description}`).toContain('not available in this version')
  })
})
