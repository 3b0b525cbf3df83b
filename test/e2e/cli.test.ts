import { afterAll, describe, expect, test } from 'bun:test'
import pkg from '../../package.json' with { type: 'json' }
import { ROOT, runCli, spawnCli, tempDir } from '../helpers/cli.ts'

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

describe('stray arguments', () => {
  test('orch serve 9111 exits 2 naming the argument and the flag it was likely meant for (it does not listen on 9097)', async () => {
    const proc = spawnCli(['serve', '9111', '--port', '0'], opts)
    // Before the check, serve started and ran until stopped: give it a bound.
    const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000)
    const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()])
    clearTimeout(timer)
    expect(code).toBe(2)
    expect(stderr).toContain('orch serve: unexpected argument "9111" (did you mean --port 9111?)')
  }, 30_000)

  test('every command refuses what it does not take, after its own positionals', async () => {
    const r = await runCli(['tasks', 'get', 't_1', 'extra', 'more', '--url', 'http://127.0.0.1:1'], opts)
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('orch tasks get: unexpected arguments "extra", "more"')
    expect(r.stderr).toContain('hint: run `orch tasks get --help`')
    const plain = await runCli(['capacity', '100'], { ...opts, env: { ...opts.env, npm_lifecycle_event: '' } })
    expect(plain.code).toBe(2)
    expect(plain.stderr).toContain('orch capacity: unexpected argument "100"')
    expect(plain.stderr).not.toContain('npm')
  })

  test('npm run orch without -- (npm kept the flags, set npm_config_<flag>=true): the hint is the command line that works', async () => {
    // What `npm run orch capacity --tasks 100` hands orch: argv `capacity 100`, and these variables.
    const npm = { npm_lifecycle_event: 'orch', npm_command: 'run-script', npm_config_tasks: 'true' }
    const one = await runCli(['capacity', '100'], { ...opts, env: { ...opts.env, ...npm } })
    expect(one.code).toBe(2)
    expect(one.stderr).toContain('orch capacity: unexpected argument "100"')
    expect(one.stderr).toContain('npm kept --tasks for itself')
    expect(one.stderr).toContain('npm run orch -- capacity --tasks 100')
    const two = await runCli(['capacity', '100', '6m'], { ...opts, env: { ...opts.env, ...npm, npm_config_duration: 'true' } })
    expect(two.code).toBe(2)
    expect(two.stderr).toContain('npm kept --tasks, --duration for itself')
    expect(two.stderr).toContain('npm run orch -- capacity --tasks … --duration …')
  })
})

describe('colour', () => {
  // As in a terminal session, except that stdout is a pipe: nothing in the environment turns colour off.
  const colourful = { ...opts.env, NO_COLOR: '', TERM: 'xterm-256color', CI: '', TEST: '' }

  for (const path of [['tasks'], ['serve'], ['tasks', 'submit']]) {
    test(`orch ${path.join(' ')} --help into a pipe has no escape codes; FORCE_COLOR=1 allows them`, async () => {
      const piped = await runCli([...path, '--help'], { ...opts, env: colourful })
      expect(piped.code).toBe(0)
      expect(piped.stdout).toContain('USAGE')
      expect(piped.stdout).not.toContain('\x1b[')
      const forced = await runCli([...path, '--help'], { ...opts, env: { ...colourful, FORCE_COLOR: '1' } })
      expect(forced.stdout).toContain('\x1b[')
    })
  }

  // `script` (util-linux, essential on Debian) gives the CLI a terminal on stdout.
  test('a terminal on stdout, logs into a file: no escape codes in the logs; NO_COLOR=true also for help', async () => {
    const err = `${tmp.path}/stderr.txt`
    const entry = `${ROOT}/commands/index.ts`
    const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`
    const run = async (args: string[], env: Record<string, string>) => {
      const command = `${[process.execPath, '--no-env-file', entry, ...args].map(quote).join(' ')} 2>${quote(err)}`
      // NO_COLOR absent altogether (consola reads even an empty one as "no colour"), and no ORCH_* from outside.
      const inherited = Object.entries({ ...process.env, ...colourful }).filter(([k]) => k !== 'NO_COLOR' && !k.startsWith('ORCH_'))
      const proc = Bun.spawn(['script', '-qec', command, '/dev/null'], {
        cwd: tmp.path,
        env: { ...Object.fromEntries(inherited), ORCH_HOME: opts.env.ORCH_HOME, ...env },
        stdin: 'ignore',
        stdout: 'pipe',
        stderr: 'pipe',
      })
      const stdout = await new Response(proc.stdout).text()
      await proc.exited
      return { stdout, stderr: await Bun.file(err).text() }
    }
    // An unknown ORCH_* variable is warned about through the logger.
    const logged = await run(['status'], { ORCH_TYPO: '1' })
    expect(logged.stderr).toContain('unknown environment variable ORCH_TYPO')
    expect(logged.stderr).not.toContain('\x1b[')
    const help = await run(['tasks', '--help'], { NO_COLOR: 'true' })
    expect(help.stdout).toContain('USAGE')
    expect(help.stdout).not.toContain('\x1b[')
  })
})

describe('--url', () => {
  test('--url must be an http(s) URL for every command that talks to orch serve (workflows too): exit 2', async () => {
    for (const command of [
      ['tasks', 'list'],
      ['workflows', 'list'],
      ['workflows', 'get', 'nightly'],
    ]) {
      const r = await runCli([...command, '--url', 'ftp://127.0.0.1:1'], opts)
      expect(r.code).toBe(2)
      expect(r.stderr).toContain('--url must be an http(s) URL, got "ftp://127.0.0.1:1"')
    }
  })
})
