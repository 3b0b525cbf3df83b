/** `orch stop`: stop the `orch serve` of this state directory, foreground or background (its record in $ORCH_HOME). */
import { parseDurationMs } from '../src/core/duration.ts'
import { UsageError } from '../src/core/errors.ts'
import { logger } from '../src/core/log.ts'
import { STOP_MARGIN_MS, stopDaemon } from '../src/daemon/daemon.ts'
import { modeText } from '../src/daemon/pidfile.ts'
import { defineOrchCommand, globalArgs, printJson, printText } from './_args.ts'
import { loadConfig } from './_config.ts'

export default defineOrchCommand({
  meta: {
    name: 'stop',
    description: 'Stop the orch serve of this state directory (foreground or --detach): SIGTERM, then SIGKILL after a timeout',
  },
  args: {
    ...globalArgs,
    timeout: {
      type: 'string',
      valueHint: 'SPAN',
      description: 'How long to wait for work in flight before SIGKILL: 10s, 1m, 500ms (default graceful_shutdown_timeout_ms + 5s)',
    },
  },
  examples: ['orch stop', 'orch stop --timeout 1m          # let long generations finish', 'orch stop --home /srv/orch --json'],
  async run({ args }) {
    const { config, home } = loadConfig(args)
    let timeoutMs = config.graceful_shutdown_timeout_ms + STOP_MARGIN_MS
    if (args.timeout !== undefined) {
      const ms = parseDurationMs(args.timeout)
      if (ms === undefined || !(ms >= 0)) {
        throw new UsageError(`--timeout: expected a time span such as 10s, 1m or 500ms, got "${args.timeout}"`)
      }
      timeoutMs = Math.round(ms)
    }
    const result = await stopDaemon(home, timeoutMs, (pid) =>
      logger().warn(`orch serve (pid ${pid}) did not stop within ${timeoutMs / 1000} s: sending SIGKILL (work in flight is cut off)`),
    )
    if (args.json) {
      printJson({ ...result, home })
      return 0
    }
    if (!result.stopped) {
      const stale = result.stale_pid ? ` (removed a stale pid file: pid ${result.stale_pid} is gone)` : ''
      printText(`orch serve is not running for ${home}${stale}`)
    } else {
      for (const server of result.servers) {
        const how = server.forced ? 'killed' : 'stopped'
        const took = (server.elapsed_ms / 1000).toFixed(1)
        printText(`orch serve ${how} (pid ${server.pid}, ${server.url}, was running ${modeText(server.mode)}) in ${took} s`)
      }
    }
    return 0
  },
})
