/**
 * The task runners of a cluster (event_bus_type: redis), as each reports itself: every orch worker and
 * orch serve of the cluster writes a heartbeat to `<prefix>:workers` (one hash field per runner, a JSON
 * record) every HEARTBEAT_MS, and `orch status` lists them. A runner that stopped writing is shown as gone
 * after GONE_AFTER_MS and forgotten after FORGET_AFTER_MS; one that stops cleanly removes itself at once.
 */
import type { Redis } from 'ioredis'

export const HEARTBEAT_MS = 2000
/** A runner silent this long is reported gone (its tasks come back when their leases expire). */
export const GONE_AFTER_MS = 10_000
/** A gone runner stays listed this long, so an operator sees what died, then its record is deleted. */
export const FORGET_AFTER_MS = 10 * 60_000

export interface RunnerRecord {
  /** Its lease owner: host:pid:run. */
  id: string
  role: 'serve' | 'worker'
  host: string
  pid: number
  /** Tasks it runs now. */
  running: number
  /** Most tasks it runs at once (null: no cap of its own). */
  concurrency: number | null
  started_at: number
  last_seen: number
  /** The pools its machine runs (autoscaling shares the cluster's backlog among the machines with a pool). */
  pools?: string[]
}

export interface ListedRunner extends RunnerRecord {
  alive: boolean
}

export class RunnerRegistry {
  private readonly key: string

  constructor(
    private readonly client: Redis,
    prefix: string,
    private readonly now: () => number = Date.now,
  ) {
    this.key = `${prefix}:workers`
  }

  async beat(record: Omit<RunnerRecord, 'last_seen'>): Promise<void> {
    await this.client.hset(this.key, record.id, JSON.stringify({ ...record, last_seen: this.now() }))
  }

  async remove(id: string): Promise<void> {
    await this.client.hdel(this.key, id)
  }

  /** Every runner heard from in the last FORGET_AFTER_MS, alive ones first, then by id; older records are deleted. */
  async list(): Promise<ListedRunner[]> {
    const now = this.now()
    const stored = await this.client.hgetall(this.key)
    const runners: ListedRunner[] = []
    const forgotten: string[] = []
    for (const [id, text] of Object.entries(stored)) {
      let record: RunnerRecord
      try {
        record = JSON.parse(text) as RunnerRecord
      } catch {
        forgotten.push(id)
        continue
      }
      if (now - record.last_seen > FORGET_AFTER_MS) forgotten.push(id)
      else runners.push({ ...record, alive: now - record.last_seen <= GONE_AFTER_MS })
    }
    if (forgotten.length > 0) await this.client.hdel(this.key, ...forgotten)
    return runners.sort((a, b) => Number(b.alive) - Number(a.alive) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  }
}

/** Writes `record()` every HEARTBEAT_MS until stopped; a beat that fails (Redis down) is skipped. */
export function startHeartbeat(registry: RunnerRegistry, record: () => Omit<RunnerRecord, 'last_seen'>): { stop(): Promise<void> } {
  const beat = () => registry.beat(record()).catch(() => undefined)
  void beat()
  const timer = setInterval(beat, HEARTBEAT_MS)
  timer.unref?.()
  return {
    async stop() {
      clearInterval(timer)
      await registry.remove(record().id).catch(() => undefined)
    },
  }
}
