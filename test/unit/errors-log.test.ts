import { describe, expect, test } from 'bun:test'
import { ConfigError, didYouMean, ExitCode, editDistance, formatIssue, OrchError, UsageError } from '../../src/core/errors.ts'
import { configureLogging, logger } from '../../src/core/log.ts'

describe('errors', () => {
  test('each error class maps to its exit code', () => {
    expect(new OrchError('x').exitCode).toBe(ExitCode.failure)
    expect(new UsageError('x').exitCode).toBe(ExitCode.usage)
    expect(new ConfigError('x').exitCode).toBe(ExitCode.usage)
  })

  test('a UsageError cannot be given another exit code', () => {
    expect(new UsageError('x', { code: 'E_X' } as never).exitCode).toBe(2)
  })

  test('ConfigError lists every issue with file, line and key path', () => {
    const error = new ConfigError([
      { path: 'server.port', message: 'expected an integer', file: 'orch.yaml', line: 3, column: 9 },
      { path: 'pools[0].name', message: 'required' },
    ])
    expect(error.message).toContain('2 problems')
    expect(error.message).toContain('orch.yaml:3:9: server.port: expected an integer')
    expect(error.message).toContain('pools[0].name: required')
    expect(error.toJSON().issues).toHaveLength(2)
    expect(formatIssue({ path: '', message: 'm', file: 'f.yaml' })).toBe('f.yaml: m')
  })

  test('didYouMean suggests only close candidates', () => {
    expect(didYouMean('capasity', ['capacity', 'config'])).toBe('capacity')
    expect(didYouMean('pool_sise', ['pool_size', 'pools'])).toBe('pool_size')
    expect(didYouMean('zzz', ['capacity', 'config'])).toBeUndefined()
    expect(didYouMean('hots', ['host', 'port'])).toBe('host')
    expect(editDistance('kitten', 'sitting')).toBe(3)
    expect(editDistance('hots', 'host')).toBe(1)
    expect(editDistance('ab', 'ba')).toBe(1)
    expect(editDistance('', 'abc')).toBe(3)
  })
})

describe('logging', () => {
  test('category levels override the global level, and change for loggers already handed out', () => {
    const pool = logger('pool')
    const http = logger('http')
    configureLogging({ level: 'warning', categories: { pool: 'debug' } })
    expect(pool.level).toBe(4)
    expect(http.level).toBe(1)
    configureLogging({ level: 'none' })
    expect(pool.level).toBe(Number.NEGATIVE_INFINITY)
    expect(logger().level).toBe(Number.NEGATIVE_INFINITY)
    configureLogging({ level: 'info' })
    expect(http.level).toBe(3)
  })

  test('log lines go to stderr, never stdout', () => {
    const out: string[] = []
    const err: string[] = []
    const stdoutWrite = process.stdout.write
    const stderrWrite = process.stderr.write
    process.stdout.write = ((chunk: string) => out.push(String(chunk)) > 0) as typeof process.stdout.write
    process.stderr.write = ((chunk: string) => err.push(String(chunk)) > 0) as typeof process.stderr.write
    try {
      configureLogging({ level: 'debug' })
      logger('batch').info('hello from batch')
      logger('batch').debug('debug from batch')
    } finally {
      process.stdout.write = stdoutWrite
      process.stderr.write = stderrWrite
      configureLogging({ level: 'info' })
    }
    expect(out.join('')).toBe('')
    expect(err.join('')).toContain('hello from batch')
    expect(err.join('')).toContain('debug from batch')
    expect(err.join('')).toContain('batch')
  })
})
