/**
 * GET /batch against a real orch serve: the same answer, field for field, as `orch batch status --json` run
 * on the same folders and state.db; paths from the config only; a missing inputs_root is a clear error.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { type BatchFolders, makeBatchFolders, withoutAges } from '../helpers/batch-folders.ts'
import { tempDir } from '../helpers/cli.ts'
import { startTestServe, type TestServe } from '../helpers/serve.ts'

describe('GET /batch', () => {
  const dir = tempDir('orch-batch-api-')
  let t: TestServe
  let folders: BatchFolders

  beforeAll(async () => {
    t = await startTestServe({
      tweak: (c) => {
        c.batch.inputs_root = join(dir.path, 'Inputs')
        c.batch.outputs_root = join(dir.path, 'Outputs')
      },
    })
    folders = makeBatchFolders(dir.path, t.home)
    const tick = await folders.cli('tick', '--json')
    expect(tick.json().batch).toBe('Scored')
  }, 30_000)
  afterAll(async () => {
    await t?.stop()
    dir.cleanup()
  })

  test('answers what orch batch status --json prints, field for field', async () => {
    const cli = await folders.cli('status', '--json')
    expect(cli.code).toBe(0)
    const response = await t.fetch('/batch')
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toContain('application/json')
    const api = (await response.json()) as any
    const status = cli.json()
    expect(Object.keys(api).sort()).toEqual(Object.keys(status).sort())
    expect(withoutAges(api)).toEqual(withoutAges(status))
    for (const [i, lock] of status.locks.entries()) expect(Math.abs(api.locks[i].age_seconds - lock.age_seconds)).toBeLessThanOrEqual(2)

    // What the folders hold, as the runner sees them.
    expect(api.inputs_root).toBe(folders.inputsRoot)
    expect(api.pending).toEqual(['Waiting'])
    expect(api.locked).toEqual(['Busy', 'Stuck'])
    expect(api.locks.map((l: any) => [l.name, l.stale, l.pid])).toEqual([
      ['Busy', false, 4343],
      ['Stuck', true, 4242],
    ])
    expect(api.processed).toHaveLength(1)
    const [scored] = api.processed
    expect(scored.name).toBe('Scored')
    expect(scored.exit_status).toBe(0)
    expect(typeof scored.summary.overall_score).toBe('number')
    expect(scored.result_path).toBe(join(folders.outputsRoot, 'Scored', 'result.json'))
  })

  test('nothing in the request becomes a path: query parameters change nothing', async () => {
    const plain = withoutAges((await (await t.fetch('/batch')).json()) as any)
    const asked = await t.fetch(`/batch?inputs_root=${encodeURIComponent('/etc')}&dir=..`)
    expect(asked.status).toBe(200)
    expect(withoutAges((await asked.json()) as any)).toEqual(plain)
  })
})

describe('GET /batch without an inputs_root folder', () => {
  let t: TestServe
  beforeAll(async () => {
    t = await startTestServe({ tweak: (c) => (c.batch.inputs_root = '/nonexistent/orch-batch-inputs') })
  })
  afterAll(async () => t?.stop())

  test('is a 409 in orch’s error format naming the folder, as the CLI exits 2 for it', async () => {
    const response = await t.fetch('/batch')
    expect(response.status).toBe(409)
    const body = (await response.json()) as { error: { code: string; message: string } }
    expect(body.error.code).toBe('E_BATCH_INPUTS_ROOT')
    expect(body.error.message).toContain('batch.inputs_root "/nonexistent/orch-batch-inputs" is not a folder on the server')
  })
})

describe('GET /batch with server.token', () => {
  const dir = tempDir('orch-batch-api-token-')
  let t: TestServe
  beforeAll(async () => {
    t = await startTestServe({
      tweak: (c) => {
        c.server.token = 'batch-api-test-token-0123456789'
        c.batch.inputs_root = dir.path
      },
    })
  })
  afterAll(async () => {
    await t?.stop()
    dir.cleanup()
  })

  test('needs the token, like every data endpoint; with it, an empty inputs_root lists nothing', async () => {
    expect((await fetch(`${t.url}/batch`)).status).toBe(401)
    const response = await t.fetch('/batch')
    expect(response.status).toBe(200)
    const body = (await response.json()) as { inputs_root: string; pending: string[]; locks: unknown[]; processed: unknown[] }
    expect(body).toMatchObject({ inputs_root: dir.path, pending: [], locks: [], processed: [] })
  })
})
