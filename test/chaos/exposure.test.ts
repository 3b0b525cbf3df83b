/**
 * Exposure through the CLI, as a user meets it: binding beyond loopback needs a token, and a short token
 * is refused the same way (exit 2 naming server.token, before anything listens); a served error never
 * carries the runtime's error page or internals.
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { runCli, tempDir } from '../helpers/cli.ts'

const home = tempDir('orch-exposure-')
afterAll(() => home.cleanup())

describe('orch serve on a network address', () => {
  test.each([
    ['no token', {}, 'required to bind to 0.0.0.0'],
    ['a one-character token', { ORCH_SERVER_TOKEN: 'x' }, 'at least 16 characters'],
    ['a 15-character token', { ORCH_SERVER_TOKEN: 'x'.repeat(15) }, 'at least 16 characters'],
  ])('%s: exit 2 naming server.token, nothing listens', async (_name, env, message) => {
    const r = await runCli(['serve', '--host', '0.0.0.0', '--port', '0', '--home', home.path], { env: env as Record<string, string> })
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('server.token')
    expect(r.stderr).toContain(message)
    expect(r.stderr).not.toContain('listening')
    expect(r.stderr).not.toMatch(/\bat .+:\d+:\d+/)
  })
})
