/**
 * The TaskQueue contract against the Redis queue, on a real redis-server (started on a free loopback port
 * for this file): each queue under a prefix of its own, a sibling on a connection of its own.
 */
import { afterAll, beforeAll } from 'bun:test'
import type { Redis } from 'ioredis'
import { connectRedis, waitReady } from '../../src/store/redis.ts'
import { RedisTaskQueue } from '../../src/tasks/redis.ts'
import { taskQueueContract } from '../contract/task-queue.ts'
import { type RedisServer, startRedis } from '../helpers/redis-server.ts'

let server: RedisServer
let made = 0

beforeAll(async () => {
  server = await startRedis()
})
afterAll(async () => {
  await server.stop()
})

taskQueueContract('redis', async (options) => {
  const prefix = `contract${++made}`
  const settings = { url: server.url, password: undefined, prefix }
  const clients: Redis[] = []
  const queues: RedisTaskQueue[] = []
  const open = async () => {
    const client = connectRedis(settings, { name: 'orch-test' })
    await waitReady(client, settings)
    clients.push(client)
    const queue = new RedisTaskQueue({ client, url: server.url, prefix }, options)
    queues.push(queue)
    return queue
  }
  const queue = await open()
  return {
    queue,
    sibling: open,
    async dispose() {
      for (const q of queues) await q.close()
      const [first] = clients
      if (first) {
        const keys = await first.keys(`${prefix}:*`)
        if (keys.length > 0) await first.del(...keys)
      }
      for (const client of clients) client.disconnect()
    },
  }
})
