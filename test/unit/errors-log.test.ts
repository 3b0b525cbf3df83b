import { describe, expect, test } from 'bun:test'
import { BackendError } from '../../src/backends/types.ts'
import { ConfigError, didYouMean, ExitCode, editDistance, formatIssue, httpError, OrchError, UsageError } from '../../src/core/errors.ts'
import { configureLogging, logger } from '../../src/core/log.ts'
import { queueFullError } from '../../src/scheduler/errors.ts'
import { errorResponse, statusOf } from '../../src/server/http.ts'
import { isRetryableError } from '../../src/tasks/retry.ts'

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

  test('status, retryable and retry-after are typed fields; --json output prints them where it always did', () => {
    const thrown = (() => {
      try {
        throw queueFullError(8, 3)
      } catch (error) {
        return error as OrchError
      }
    })()
    expect([thrown.status, thrown.retryable, thrown.retryAfterS]).toEqual([429, true, 3])
    expect(JSON.stringify(thrown)).toBe(
      JSON.stringify({
        code: 'E_QUEUE_FULL',
        message: thrown.message,
        hint: thrown.hint,
        status: 429,
        retryable: true,
        retry_after_s: 3,
      }),
    )

    const refused = httpError(400, 'temperature: expected a number', 'E_VALIDATION', { field: 'temperature' })
    expect([refused.status, refused.retryable, refused.retryAfterS]).toEqual([400, false, undefined])
    expect(JSON.stringify(refused.toJSON())).toBe(
      '{"code":"E_VALIDATION","message":"temperature: expected a number","status":400,"retryable":false,"field":"temperature"}',
    )
  })

  test('facts given as options or under their wire names in details are stored once, as the fields', () => {
    const byOption = new OrchError('slow down', { code: 'E_X', status: 429, retryable: true, retryAfterS: 7, details: { key: 'k' } })
    const byDetails = new OrchError('slow down', { code: 'E_X', details: { status: 429, retryable: true, retry_after_s: 7, key: 'k' } })
    for (const error of [byOption, byDetails]) {
      expect([error.status, error.retryable, error.retryAfterS]).toEqual([429, true, 7])
      expect(error.details).toEqual({ status: 429, retryable: true, retry_after_s: 7, key: 'k' })
      expect(statusOf(error)).toBe(429)
      expect(isRetryableError(error)).toBe(true)
    }
    expect(new OrchError('plain').details).toBeUndefined()
  })

  test('the HTTP answer reads the fields: status and Retry-After from options alone', async () => {
    const response = errorResponse(new OrchError('slow down', { code: 'E_QUEUE_FULL', status: 429, retryAfterS: 7 }))
    expect(response.status).toBe(429)
    expect(response.headers.get('retry-after')).toBe('7')
    expect(await response.json()).toEqual({ error: { code: 'E_QUEUE_FULL', message: 'slow down' } })
  })

  test("a BackendError's status and verdict are the same fields, left out of details and --json output", () => {
    const error = new BackendError('vllm: HTTP 503: busy', { kind: 'http', backend: 'vllm', status: 503 })
    expect([error.status, error.retryable]).toEqual([503, true])
    expect(error).toBeInstanceOf(OrchError)
    expect(error.details).toBeUndefined()
    expect(error.toJSON()).toEqual({ code: 'E_BACKEND_HTTP', message: 'vllm: HTTP 503: busy', hint: undefined })
    const withFacts = new BackendError('vllm: HTTP 400: bad', {
      kind: 'http',
      backend: 'vllm',
      status: 400,
      details: { upstream_code: 'x' },
    })
    expect([withFacts.status, withFacts.retryable, withFacts.details]).toEqual([400, false, { upstream_code: 'x' }])
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
