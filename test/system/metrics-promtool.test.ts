/**
 * `promtool check metrics` (lint included) accepts what GET /metrics serves after real traffic. Needs
 * promtool from Debian's `prometheus` package: `.ci/run` installs it and runs `npm run test:system`;
 * without it this test fails and says what to install.
 */
import { afterAll, expect, test } from 'bun:test'
import { driveTraffic } from '../helpers/metrics-traffic.ts'
import { startTestServe, type TestServe } from '../helpers/serve.ts'

let t: TestServe | undefined
afterAll(async () => {
  await t?.stop()
})

test('promtool check metrics accepts the exposition after real traffic', async () => {
  const promtool = Bun.which('promtool')
  if (!promtool) throw new Error("promtool is not installed: apt-get install -y prometheus (Debian's package provides it)")
  t = await startTestServe({
    tweak: (c) => {
      c.infrastructure_system.performance_monitoring.export_formats = ['none']
    },
  })
  await driveTraffic(t)
  const text = await (await t.fetch('/metrics')).text()
  expect(text).toContain('orchestrator_inflight_tasks')
  const proc = Bun.spawn([promtool, 'check', 'metrics'], { stdin: new TextEncoder().encode(text), stdout: 'pipe', stderr: 'pipe' })
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  expect(`${out}${err}`.trim()).toBe('')
  expect(code).toBe(0)
}, 60_000)
