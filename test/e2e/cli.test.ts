import { afterAll, describe, expect, test } from 'bun:test'
import pkg from '../../package.json' with { type: 'json' }
import { runCli, tempDir } from '../helpers/cli.ts'

const tmp = tempDir('orch-cli-')
afterAll(() => tmp.cleanup())
const opts = { cwd: tmp.path, env: { ORCH_HOME: `${tmp.path}/.orch` } }

describe('orch (the shell)', () => {
  test('--version prints the package version', async () => {
    const r = await runCli(['--version'], opts)
    expect(r.code).toBe(0)
    expect(r.stdout.trim()).toBe(pkg.version)
  })

  test('--help lists the registered commands, the global flags, an example and the exit codes', async () => {
    const r = await runCli(['--help'], opts)
    expect(r.code).toBe(0)
    for (const text of ['capacity', 'config', '--config', '--home', '--json', '--log-level', '--debug', 'Examples:', 'Exit codes']) {
      expect(r.stdout).toContain(text)
    }
    expect(r.stderr).toBe('')
  })

  for (const path of [['capacity'], ['config'], ['config', 'show'], ['config', 'validate'], ['config', 'init'], ['config', 'env']]) {
    test(`${path.join(' ')} --help shows usage and a worked example`, async () => {
      const r = await runCli([...path, '--help'], opts)
      expect(r.code).toBe(0)
      expect(r.stdout).toContain(`orch ${path.join(' ')}`)
      expect(r.stdout).toContain('Examples:')
    })
  }

  test('an unknown command exits 2 with a did-you-mean', async () => {
    const r = await runCli(['capasity', '--tasks', '1'], opts)
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('unknown command "capasity"')
    expect(r.stderr).toContain('did you mean "capacity"?')
    expect(r.stdout).toBe('')
  })

  test('an unknown subcommand exits 2 with a did-you-mean', async () => {
    const r = await runCli(['config', 'valdate'], opts)
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('did you mean "validate"?')
  })

  test('an unknown flag exits 2 with a did-you-mean, never silently ignored', async () => {
    const r = await runCli(['capacity', '--tasks', '100', '--duraton', '0.1'], opts)
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('unknown flag "--duraton"')
    expect(r.stderr).toContain('did you mean "--duration"?')
  })

  test('global flags are accepted before the command name too', async () => {
    const r = await runCli(['--json', 'capacity', '--tasks', '100', '--duration', '0.1', '--concurrency', '2'], opts)
    expect(r.code).toBe(0)
    expect(r.json().required_instances).toBe(7)
  })

  test('errors print a message and a hint, no stack trace; --debug adds the stack', async () => {
    const plain = await runCli(['capacity', '--tasks', '-5', '--duration', '0.1', '--concurrency', '2'], opts)
    expect(plain.code).toBe(2)
    expect(plain.stderr).toContain('--tasks')
    expect(plain.stderr).not.toMatch(/\n\s+at /)
    const debug = await runCli(['capacity', '--tasks', '-5', '--duration', '0.1', '--concurrency', '2', '--debug'], opts)
    expect(debug.code).toBe(2)
    expect(debug.stderr).toMatch(/\n\s+at /)
  })

  test('with --json an error is also a JSON object on stdout', async () => {
    const r = await runCli(['capacity', '--tasks', 'many', '--duration', '0.1', '--concurrency', '2', '--json'], opts)
    expect(r.code).toBe(2)
    const body = r.json<{ error: { code: string; message: string } }>()
    expect(body.error.code).toBe('E_USAGE')
    expect(body.error.message).toContain('--tasks')
  })

  test('no command at all prints help and exits 0', async () => {
    const r = await runCli([], opts)
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('Usage: orch <command>')
  })

  test('flags without a command exit 2 and say so', async () => {
    const r = await runCli(['--json'], opts)
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('no command given')
  })
})
