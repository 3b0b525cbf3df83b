import { describe, expect, test } from 'bun:test'
import {
  controlSocketPath,
  DEFAULT_HOME,
  logsDir,
  runDir,
  SERVE_RECORD_NAME,
  secondServeRecordPath,
  serveLogPath,
  serveRecordPath,
  stateDbPath,
  watchdogScriptPath,
  workerLogPath,
  writeProbePath,
} from '../../src/core/home.ts'
import { serviceLogPath } from '../../src/daemon/logfile.ts'

// The layout is part of the product (docs/operations.md#state-directory): state directories in the field use it.
describe('the state directory layout', () => {
  const home = '/srv/orch/.orch'

  test('every file has its fixed place', () => {
    expect(DEFAULT_HOME).toBe('.orch')
    expect(stateDbPath(home)).toBe('/srv/orch/.orch/state.db')
    expect(serveRecordPath(home)).toBe('/srv/orch/.orch/serve.pid')
    expect(secondServeRecordPath(home, 4242)).toBe('/srv/orch/.orch/serve-4242.pid')
    expect(logsDir(home)).toBe('/srv/orch/.orch/logs')
    expect(serveLogPath(home)).toBe('/srv/orch/.orch/logs/serve.log')
    expect(workerLogPath(home, 'gen', 'gen-1')).toBe('/srv/orch/.orch/logs/gen/gen-1.log')
    expect(runDir(home)).toBe('/srv/orch/.orch/run')
    expect(controlSocketPath(home)).toBe('/srv/orch/.orch/run/pool.sock')
    expect(watchdogScriptPath(home)).toBe('/srv/orch/.orch/run/pool-watchdog.ts')
    expect(writeProbePath(home, 7)).toBe('/srv/orch/.orch/.doctor-7.tmp')
  })

  test('a relative home stays relative; serve records are recognised by name', () => {
    expect(stateDbPath(DEFAULT_HOME)).toBe('.orch/state.db')
    for (const name of ['serve.pid', 'serve-1.pid', 'serve-4242.pid']) expect(SERVE_RECORD_NAME.test(name)).toBe(true)
    for (const name of ['serve.log', 'serve-x.pid', 'serve.pid.tmp', 'other.pid']) expect(SERVE_RECORD_NAME.test(name)).toBe(false)
  })

  test('a service name maps to the same worker log the supervisor writes', () => {
    expect(serviceLogPath(home, 'gen/gen-1')).toBe(workerLogPath(home, 'gen', 'gen-1'))
    expect(serviceLogPath(home, 'serve')).toBe(serveLogPath(home))
  })
})
