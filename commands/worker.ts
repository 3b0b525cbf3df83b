/**
 * `orch worker`: run durable tasks of a cluster on this machine, taking them from the cluster's queue on
 * Redis (docs/scaling.md). No HTTP server: submit and watch through any orch serve of the cluster.
 */
import { logger } from '../src/core/log.ts'
import { redactUrl, redisSettings } from '../src/store/redis.ts'
import { defineOrchCommand, globalArgs, printJson } from './_args.ts'
import { loadConfig } from './_config.ts'

const DISTRIBUTED = 'infrastructure_system.distributed_simulation'

export default defineOrchCommand({
  meta: {
    name: 'worker',
    description: "Run a cluster's durable tasks on this machine's backends and pools, taking them from Redis",
  },
  args: {
    ...globalArgs,
    redis: {
      type: 'string',
      valueHint: 'URL',
      description: `Redis of the cluster, redis://host:port or rediss:// (${DISTRIBUTED}.redis_url; sets event_bus_type: redis). The password comes from ORCH_REDIS_PASSWORD`,
    },
  },
  examples: [
    'orch worker --redis redis://10.0.0.2:6379        # take tasks from that cluster, run them on this machine',
    'ORCH_REDIS_PASSWORD=… orch worker --redis rediss://redis.internal:6380',
    'orch worker --config cluster.yaml              # event_bus_type: redis and redis_url in the file',
    'orch status --url http://10.0.0.2:9097         # the workers of the cluster, as their heartbeats say',
  ],
  async run({ args }) {
    const overrides: Record<string, unknown> = {}
    if (typeof args.redis === 'string') {
      overrides[`${DISTRIBUTED}.redis_url`] = args.redis
      overrides[`${DISTRIBUTED}.event_bus_type`] = 'redis'
      overrides[`${DISTRIBUTED}.enabled`] = true
    }
    const { config, home } = loadConfig(args, overrides)
    const { startWorker } = await import('../src/server/worker.ts')
    const worker = await startWorker({ config, home })
    const settings = redisSettings(config)
    const grace = config.graceful_shutdown_timeout_ms
    if (args.json) printJson({ id: worker.id, redis: redactUrl(settings.url), prefix: settings.prefix, pid: process.pid, home })
    else
      logger().info(
        `ready: worker ${worker.id} (Ctrl-C or SIGTERM stops; tasks in flight finish within ${grace} ms, the rest go back to the queue)`,
      )
    await new Promise<void>((resolve) => {
      const shutdown = (signal: string) => {
        logger().info(`${signal}: draining (tasks in flight finish or go back to the queue)`)
        worker.stop().then(resolve, resolve)
      }
      process.removeAllListeners('SIGINT')
      process.once('SIGINT', () => shutdown('SIGINT'))
      process.once('SIGTERM', () => shutdown('SIGTERM'))
      process.once('SIGHUP', () => shutdown('SIGHUP'))
    })
    logger().info(`stopped (pid ${process.pid})`)
    return 0
  },
})
