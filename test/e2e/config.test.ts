import { afterEach, describe, expect, test } from 'bun:test'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { defaultConfig } from '../../src/config/schema.ts'
import { runCli, spawnCli, tempDir } from '../helpers/cli.ts'

const dirs: Array<{ cleanup: () => void }> = []
afterEach(() => {
  for (const dir of dirs.splice(0)) dir.cleanup()
})

/** A temp working directory with the given files; `run` spawns orch there with its own --home. */
function project(files: Record<string, string> = {}) {
  const dir = tempDir('orch-e2e-config-')
  dirs.push(dir)
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir.path, name), text)
  const run = (args: string[], env: Record<string, string> = {}) =>
    runCli([...args, '--home', join(dir.path, 'home')], { cwd: dir.path, env })
  const serve = () => serveRefused(dir.path)
  /** `config validate` and `serve` both exit 2, and both print every expected line. */
  const refusedByBoth = async (expected: string[]) => {
    const validate = await run(['config', 'validate'])
    expect(validate.code).toBe(2)
    for (const line of expected) expect(validate.stderr).toContain(line)
    const served = await serve()
    expect(served.code).toBe(2)
    for (const line of expected) expect(served.stderr).toContain(line)
  }
  return { path: dir.path, run, serve, refusedByBoth }
}

/**
 * `orch serve` on a free port in `cwd`, expected to refuse its config and exit before it listens; a serve
 * that starts anyway is stopped after 10 s, and the test fails on its exit code.
 */
async function serveRefused(cwd: string): Promise<{ code: number | null; stderr: string }> {
  const proc = spawnCli(['serve', '--port', '0', '--home', join(cwd, 'home')], { cwd })
  const timer = setTimeout(() => proc.kill(), 10_000)
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited])
  clearTimeout(timer)
  return { code, stderr }
}

const BROKEN = ['server:', '  port: 99999', 'pools:', '  - name: gpu', '    pool_sise: 2', ''].join('\n')

describe('orch config validate', () => {
  test('a broken file exits 2 and lists every problem with file:line and the key path', async () => {
    const { run } = project({ 'orch.yaml': BROKEN })
    const r = await run(['config', 'validate'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('orch.yaml:2:3: server.port: expected an integer 1-65535, got 99999')
    expect(r.stderr).toContain('orch.yaml:5:5: pools[0].pool_sise: unknown key "pool_sise"; did you mean "pool_size"?')
    expect(r.stdout).toBe('')
  })

  test('--json prints {file, ok, issues} and still exits 2', async () => {
    const { run } = project({ 'other.yaml': BROKEN })
    const r = await run(['config', 'validate', 'other.yaml', '--json'])
    expect(r.code).toBe(2)
    const out = r.json<{ file: string; ok: boolean; issues: Array<{ path: string; line: number }> }>()
    expect(out.file).toBe('other.yaml')
    expect(out.ok).toBe(false)
    expect(out.issues.map((i) => [i.path, i.line])).toEqual([
      ['server.port', 2],
      ['pools[0].pool_sise', 5],
    ])
  })

  test('a file that does not exist: exit 2, it says so and how to create one (no keys to fix)', async () => {
    const { run } = project()
    const r = await run(['config', 'validate', 'nope.yaml'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('nope.yaml: file not found')
    expect(r.stderr).toContain('nope.yaml does not exist: check the path, or create it with `orch config init --output nope.yaml`')
    expect(r.stderr).not.toContain('fix the keys above')
    const json = await run(['config', 'validate', 'nope.yaml', '--json'])
    expect(json.code).toBe(2)
    expect(json.json().issues).toEqual([{ path: '', file: 'nope.yaml', message: 'file not found' }])
    const { path, run: runIn } = project()
    mkdirSync(join(path, 'conf'))
    const folder = await runIn(['config', 'validate', 'conf'])
    expect(folder.code).toBe(2)
    expect(folder.stderr).toContain('conf: not a regular file')
    expect(folder.stderr).toContain('conf is not a file: pass the config file itself')
  })

  test('with no file anywhere it is a usage error', async () => {
    const r = await project().run(['config', 'validate'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('no config file to validate')
  })
})

describe('config validate and serve give one verdict', () => {
  test('a section given as a list: validate and serve both exit 2 naming the key (serve before it listens)', async () => {
    const { run, serve } = project({ 'orch.yaml': 'server: [1, 2]\nlogging:\n  level: info\n' })
    const validate = await run(['config', 'validate'])
    expect(validate.code).toBe(2)
    expect(validate.stderr).toContain('orch.yaml:1:1: server: expected a mapping of keys to values, got a list')
    expect(validate.stdout).not.toContain('ok')
    const served = await serve()
    expect(served.code).toBe(2)
    expect(served.stderr).toContain('orch.yaml:1:1: server: expected a mapping of keys to values, got a list')
    expect(served.stderr).not.toContain('0 problems')
  }, 20_000)

  test('an empty list and a nested list are refused the same way', async () => {
    const { run, serve } = project({ 'orch.yaml': 'logging:\n  categories: []\n' })
    const validate = await run(['config', 'validate', '--json'])
    expect(validate.code).toBe(2)
    expect(validate.json().issues).toEqual([
      {
        path: 'logging.categories',
        message: 'expected a mapping of keys to values, got a list',
        file: 'orch.yaml',
        line: 2,
        column: 3,
      },
    ])
    const served = await serve()
    expect(served.code).toBe(2)
    expect(served.stderr).toContain('orch.yaml:2:3: logging.categories: expected a mapping of keys to values, got a list')
  }, 20_000)

  test('YAML tags outside the core schema: validate and serve both exit 2 with file:line and the tag', async () => {
    const text = [
      'server:',
      '  allowed_hosts: !!python/object/apply:os.system ["x"]',
      'logging:',
      '  level: !custom info',
      'batch:',
      '  inputs_root: !!binary aGk=',
      '',
    ].join('\n')
    const { refusedByBoth } = project({ 'orch.yaml': text })
    const expected = [
      'orch.yaml:2:18: server.allowed_hosts: YAML tag !!python/object/apply:os.system is not allowed',
      'orch.yaml:4:10: logging.level: YAML tag !custom is not allowed',
      'orch.yaml:6:16: batch.inputs_root: YAML tag !!binary is not allowed',
    ]
    await refusedByBoth(expected)
  }, 20_000)
})

describe('values this version would ignore are refused', () => {
  const BUS = 'infrastructure_system.distributed_simulation.event_bus_type'
  const bus = (type: string) => `infrastructure_system:\n  distributed_simulation:\n    event_bus_type: ${type}\n`
  const REDIS_NEEDS_ENABLED =
    'set distributed_simulation.enabled: true to run over Redis (enabled is false), or use event_bus_type: local_memory for one machine'

  test('event_bus_type kafka: validate exits 2 naming the key, its line and the reason; serve exits 2 before it listens', async () => {
    const { run, serve } = project({ 'orch.yaml': bus('kafka') })
    const expected = `orch.yaml:3:5: ${BUS}: "kafka" is not available in this version: orch has no Kafka bus, as it could not be tested without a Kafka server; use local_memory`
    const validate = await run(['config', 'validate'])
    expect(validate.code).toBe(2)
    expect(validate.stderr).toContain(expected)
    expect(validate.stdout).toBe('')
    const served = await serve()
    expect(served.code).toBe(2)
    expect(served.stderr).toContain(expected)
    expect(served.stderr).not.toContain('listening')
  }, 20_000)

  test('event_bus_type redis without distributed_simulation.enabled: refused naming both keys, by validate and by serve', async () => {
    const { run, serve } = project({ 'orch.yaml': bus('redis') })
    const expected = `orch.yaml:3:5: ${BUS}: ${REDIS_NEEDS_ENABLED}`
    const validate = await run(['config', 'validate', '--json'])
    expect(validate.code).toBe(2)
    expect(validate.json().issues).toEqual([
      {
        path: BUS,
        message: REDIS_NEEDS_ENABLED,
        file: 'orch.yaml',
        line: 3,
        column: 5,
      },
    ])
    const served = await serve()
    expect(served.code).toBe(2)
    expect(served.stderr).toContain(expected)
  }, 20_000)

  test('resource_management.auto_scaling_enabled: true is accepted beside a refused event_bus_type: kafka, which alone is named', async () => {
    const text = [
      'infrastructure_system:',
      '  resource_management:',
      '    auto_scaling_enabled: true',
      '  distributed_simulation:',
      '    event_bus_type: kafka',
      '',
    ].join('\n')
    const { refusedByBoth } = project({ 'orch.yaml': text })
    // Autoscaling is available: only the Kafka bus is refused.
    const expected = [
      'orch.yaml:5:5: infrastructure_system.distributed_simulation.event_bus_type: "kafka" is not available in this version: orch has no Kafka bus, as it could not be tested without a Kafka server; use local_memory',
    ]
    await refusedByBoth(expected)
  }, 20_000)

  test('the variable form is refused naming the variable, by serve and config show', async () => {
    const { path, run } = project()
    const expected = `${BUS}: ${REDIS_NEEDS_ENABLED} (from ORCH_EVENT_BUS)`
    const show = await run(['config', 'show'], { ORCH_EVENT_BUS: 'redis' })
    expect(show.code).toBe(2)
    expect(show.stderr).toContain(expected)
    const proc = spawnCli(['serve', '--port', '0', '--home', join(path, 'home')], { cwd: path, env: { ORCH_EVENT_BUS: 'redis' } })
    const timer = setTimeout(() => proc.kill(), 10_000)
    const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited])
    clearTimeout(timer)
    expect(code).toBe(2)
    expect(stderr).toContain(expected)
  }, 20_000)

  test('{} validates clean, and so do the defaults written out by orch config init', async () => {
    const { run } = project({ 'empty.yaml': '{}\n' })
    const empty = await run(['config', 'validate', 'empty.yaml'])
    expect(empty.code).toBe(0)
    expect(empty.stdout.trim()).toBe('empty.yaml: ok')
    expect((await run(['config', 'init', '--output', 'init.yaml'])).code).toBe(0)
    const init = await run(['config', 'validate', 'init.yaml'])
    expect(init.code).toBe(0)
    expect(init.stdout.trim()).toBe('init.yaml: ok')
  })
})

describe('orch config init', () => {
  test('writes the example, which then validates and resolves to the defaults', async () => {
    const { path, run } = project()
    const init = await run(['config', 'init'])
    expect(init.code).toBe(0)
    expect(readFileSync(join(path, 'orch.yaml'), 'utf8')).toContain('# Listen port')
    const validate = await run(['config', 'validate'])
    expect(validate.code).toBe(0)
    expect(validate.stdout.trim()).toBe('orch.yaml: ok')
    const show = await run(['config', 'show', '--json'])
    expect(show.json().server.port).toBe(9097)
  })

  test('refuses to overwrite without --force (exit 2), overwrites with it', async () => {
    const { path, run } = project({ 'orch.yaml': 'server: {port: 1}\n' })
    const refused = await run(['config', 'init'])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toContain('orch.yaml already exists')
    expect(readFileSync(join(path, 'orch.yaml'), 'utf8')).toBe('server: {port: 1}\n')
    const forced = await run(['config', 'init', '--force'])
    expect(forced.code).toBe(0)
    expect(readFileSync(join(path, 'orch.yaml'), 'utf8')).toContain('port: 9097')
  })

  test('--output writes elsewhere', async () => {
    const { path, run } = project()
    expect((await run(['config', 'init', '--output', 'conf/orch.yaml'])).code).toBe(0)
    expect((await run(['config', 'validate', join(path, 'conf/orch.yaml')])).code).toBe(0)
  })
})

describe('orch config show', () => {
  test('--json prints the resolved config with file values over defaults', async () => {
    const { run } = project({ 'orch.yaml': 'server:\n  port: 8181\n' })
    const r = await run(['config', 'show', '--json'])
    expect(r.code).toBe(0)
    const config = r.json()
    expect(config.server).toEqual({ ...defaultConfig().server, port: 8181 })
    expect(config.infrastructure_system.distributed_simulation.event_bus_type).toBe('local_memory')
  })

  test('prints YAML by default, and never the token', async () => {
    const { run } = project()
    const r = await run(['config', 'show'], { ORCH_SERVER_TOKEN: 'hunter2' })
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('port: 9097')
    expect(r.stdout).not.toContain('hunter2')
  })

  test('--sources says where each value came from: default, file:line, env, flag', async () => {
    const { run } = project({ 'orch.yaml': 'server:\n  host: 0.0.0.0\n' })
    const r = await run(['config', 'show', '--sources', '--log-level', 'warning'], { ORCH_SERVER_PORT: '8080' })
    expect(r.code).toBe(0)
    const lines = r.stdout.split('\n')
    expect(lines).toContain('server.port = 8080  (env ORCH_SERVER_PORT)')
    expect(lines).toContain('server.host = "0.0.0.0"  (file orch.yaml:2)')
    expect(lines).toContain('server.body_limit_bytes = 1048576  (default)')
    expect(lines).toContain('logging.level = "warning"  (flag)')
    const rows = (await run(['config', 'show', '--sources', '--json'], { ORCH_SERVER_PORT: '8080' })).json<
      Array<{ key: string; value: unknown; source: unknown }>
    >()
    expect(rows.find((row) => row.key === 'server.port')).toEqual({
      key: 'server.port',
      value: 8080,
      source: { kind: 'env', variable: 'ORCH_SERVER_PORT' },
    })
  })

  test('a warning (an unknown ORCH_ variable) is printed once on stderr', async () => {
    const r = await project().run(['config', 'show'], { ORCH_SERVR_PORT: '8080' })
    expect(r.code).toBe(0)
    const warning = 'unknown environment variable ORCH_SERVR_PORT; did you mean ORCH_SERVER_PORT?'
    expect(r.stderr.split(warning).length - 1).toBe(1)
    expect(r.stdout).not.toContain('ORCH_SERVR_PORT')
  })

  test('a bad env value exits 2 naming the variable and the key', async () => {
    const r = await project().run(['config', 'show'], { ORCH_SERVER_PORT: 'abc' })
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('server.port: expected an integer 1-65535, got "abc" (from ORCH_SERVER_PORT)')
  })

  test('--env merges the overlay; a missing overlay exits 2', async () => {
    const { run } = project({ 'orch.yaml': 'server: {port: 1000}\n', 'orch.prod.yaml': 'server: {port: 2000}\n' })
    expect((await run(['config', 'show', '--json', '--env', 'prod'])).json().server.port).toBe(2000)
    const missing = await run(['config', 'show', '--env', 'qa'])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain('environment "qa" has no config file')
  })
})

describe('orch config env', () => {
  test('lists the variables, as text and as JSON', async () => {
    const { run } = project()
    const text = await run(['config', 'env'])
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(/ORCH_SERVER_PORT\s+server\.port\s+int/)
    const rows = (await run(['config', 'env', '--json'])).json<Array<{ name: string; key: string | null }>>()
    expect(rows.find((r) => r.name === 'ORCH_OLLAMA_CONCURRENCY')?.key).toBe('runtime.ollama.concurrency')
    expect(rows.find((r) => r.name === 'ORCH_HOME')?.key).toBeNull()
  })
})
