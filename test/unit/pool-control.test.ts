/** The control channel's pure parts: naming a target, picking a worker log, refusing bad requests. */
import { describe, expect, test } from 'bun:test'
import { workerService } from '../../commands/pool.ts'
import { defaultConfig } from '../../src/config/schema.ts'
import { handleControl } from '../../src/pool/control.ts'
import { Supervisor } from '../../src/pool/supervisor.ts'
import { controlTarget } from '../../src/pool/targets.ts'

describe('pool control', () => {
  test('NAME: POOL/WORKER is split, a bare name is left to the supervisor, none means all', () => {
    expect(controlTarget('gen/gen-1')).toEqual({ pool: 'gen', worker: 'gen-1' })
    expect(controlTarget('gen')).toEqual({ name: 'gen' })
    expect(controlTarget(undefined)).toEqual({})
  })

  test('pool logs WORKER: a worker id, POOL/WORKER, or the only worker log there is', () => {
    const services = ['serve', 'gen/gen-1', 'gen/gen-2', 'emb/emb-1']
    expect(workerService(services, 'gen-2')).toBe('gen/gen-2')
    expect(workerService(services, 'emb/emb-1')).toBe('emb/emb-1')
    expect(workerService(['serve', 'emb/emb-1'], undefined)).toBe('emb/emb-1')
    expect(() => workerService(services, undefined)).toThrow('name the worker')
    expect(() => workerService(services, 'nope')).toThrow('no log for worker "nope"')
  })

  test('a bad request or an unknown name gets an error reply, never a throw', async () => {
    const supervisor = new Supervisor({ config: defaultConfig(), home: '/nonexistent' })
    expect(await handleControl(supervisor, 'not json')).toMatchObject({ ok: false, error: expect.stringContaining('bad request') })
    expect(await handleControl(supervisor, '{"cmd":"explode"}')).toMatchObject({ ok: false })
    expect(await handleControl(supervisor, '{"cmd":"stop","worker":7}')).toMatchObject({ ok: false })
    expect(await handleControl(supervisor, '{"cmd":"stop","name":"gen-1"}')).toEqual({
      ok: false,
      error: 'unknown worker "gen-1"',
      known: { pools: [], workers: [] },
    })
    expect(await handleControl(supervisor, '{"cmd":"status"}')).toEqual({ ok: true, cmd: 'status', message: '0 worker(s)', workers: [] })
  })
})
