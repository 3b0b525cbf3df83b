import { expect, test } from 'bun:test'
import { poolStats, type WorkerStatus } from '../../src/pool/status.ts'

const worker = (id: string, state: string, served: number, inflight: number): WorkerStatus => ({
  pool: 'p',
  id,
  pid: 1,
  port: 1,
  gpu: null,
  state,
  uptime_s: 1,
  restarts: 0,
  served,
  inflight,
  last_heartbeat: null,
})

test('pool stats: live workers, idle healthy ones available, busy ones, requests served', () => {
  const workers = [
    worker('p-1', 'healthy', 10, 0),
    worker('p-2', 'healthy', 5, 2),
    worker('p-3', 'starting', 0, 0),
    worker('p-4', 'failed', 7, 0),
  ]
  expect(poolStats(workers, undefined)).toEqual({
    requests: 22,
    queued: null,
    errors: null,
    queue_timeouts: null,
    pool_saturated: null,
    workers: 3,
    available: 1,
    busy: 1,
  })
  expect(poolStats(workers, { queued: 4, errors: 1, queue_timeouts: 2, pool_saturated: 0 })).toMatchObject({
    queued: 4,
    errors: 1,
    queue_timeouts: 2,
  })
})
