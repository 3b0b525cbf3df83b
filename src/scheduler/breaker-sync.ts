/**
 * Circuit breakers shared by the instances of a cluster (event_bus_type: redis): when one instance's
 * breaker for a backend opens, every instance opens its breaker for that backend, with the same time left
 * until a trial call; when a trial succeeds and it closes, every instance closes it.
 *
 * - A backend is known by its configured name: instances of one cluster must name the same backend alike.
 *   Only the backends `shares` names take part (the engine: those under `backends:`; a pool worker runs on
 *   one machine, and its name on another machine is another process).
 * - A local opening or closing is one message `{seq, backend, state, opened_at, reset_ms, instance,
 *   sent_at}`, numbered by Redis (`<prefix>:breakers:seq`), kept as the backend's last state in the hash
 *   `<prefix>:breakers:state` and published on `<prefix>:breakers`; all in one script, so the numbers
 *   follow the order in which instances receive the messages.
 * - A message from another instance is applied with `applyRemote`, which tells no listener: nothing is
 *   passed back. One older than the last the backend heard of is ignored, and while a local transition of
 *   the backend is still on its way the messages of others wait for its number, so every instance ends on
 *   the same last state.
 * - At start, and after every reconnection, the hash is read: an instance started later, or one cut off
 *   for a while, takes the circuits that are still open.
 * - Redis down: each breaker goes on alone; nothing here throws into a request. A transition Redis did
 *   not take is sent again (as the breaker stands then) once it is back.
 */
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import type { Redis } from 'ioredis'
import { logger } from '../core/log.ts'
import type { RedisSettings } from '../store/redis.ts'
import type { BreakerTransition, CircuitBreaker } from './breaker.ts'
import type { Scheduler } from './scheduler.ts'

export interface BreakerMessage {
  /** Order of every breaker message of the cluster, given by Redis. */
  seq: number
  backend: string
  state: 'open' | 'closed'
  /** When it opened, ms since the epoch on the sender's clock (0 for closed). */
  opened_at: number
  /** The sender's reset_timeout_ms: with opened_at and sent_at, how long the circuit has left. */
  reset_ms: number
  instance: string
  sent_at: number
}

/** What the sync watches and tells: the scheduler's backends. */
export type BreakerHost = Pick<Scheduler, 'states' | 'onChange' | 'update'>

export interface BreakerSyncStart {
  /** Whether a backend's breaker is shared; default: every backend's. */
  shares?: (backend: string) => boolean
}

export interface BreakerSyncOptions {
  /** The cluster's command connection (connectRedis); the sync opens its own subscriber beside it. */
  client: Redis
  settings: Pick<RedisSettings, 'url' | 'prefix'>
  /** This instance's name in the messages; default host:pid:random. */
  instance?: string
  now?: () => number
  /** How long `start` waits for the subscription and the stored states (default 2000 ms). */
  readyTimeoutMs?: number
  log?: { debug(message: string): void }
}

const PUBLISH_SCRIPT = `
local seq = redis.call('INCR', KEYS[1])
local message = '{"seq":' .. seq .. ',' .. string.sub(ARGV[2], 2)
redis.call('HSET', KEYS[2], ARGV[1], message)
redis.call('PUBLISH', ARGV[3], message)
return seq
`

type Received = 'live' | 'stored'

/** What another instance last said of a backend, on this process's clock. */
interface Known {
  state: 'open' | 'closed'
  /** When the circuit admits a trial call (open only). */
  halfOpenAt: number
}

export class BreakerSync {
  readonly instance: string
  private readonly client: Redis
  private readonly url: string
  private readonly keys: { channel: string; state: string; seq: string }
  private readonly now: () => number
  private readonly log: { debug(message: string): void }
  private readonly readyTimeoutMs: number
  private host: BreakerHost | undefined
  private shares: (backend: string) => boolean = () => true
  private offChange: (() => void) | undefined
  private subscriber: Redis | undefined
  private subscribed = false
  private closed = false
  /** Told when either connection is (re)connected. */
  private readonly onReady = () => void this.resync()
  private resolveFirstSync: () => void = () => undefined
  private down = false
  /** The breaker watched for each backend name, and how to stop. */
  private readonly watched = new Map<string, { breaker: CircuitBreaker; off: () => void }>()
  /** The highest message number applied or sent, per backend. */
  private readonly lastSeq = new Map<string, number>()
  /** Local transitions sent and not yet numbered, per backend; messages of others wait for them. */
  private readonly sending = new Map<string, number>()
  private readonly held = new Map<string, Array<{ message: BreakerMessage; how: Received }>>()
  /** The last state others reported per backend, for a backend added here later. */
  private readonly known = new Map<string, Known>()
  /** Backends whose last local transition Redis did not take. */
  private readonly unsent = new Set<string>()

  constructor(options: BreakerSyncOptions) {
    this.client = options.client
    this.url = options.settings.url
    const base = `${options.settings.prefix}:breakers`
    this.keys = { channel: base, state: `${base}:state`, seq: `${base}:seq` }
    this.instance = options.instance ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`
    this.now = options.now ?? Date.now
    this.readyTimeoutMs = options.readyTimeoutMs ?? 2000
    this.log = options.log ?? logger('scheduler')
  }

  /**
   * Watch the host's breakers and subscribe. Resolves once the stored states are applied, or after
   * `readyTimeoutMs` (or at once while Redis is down: the sync starts when it comes up).
   */
  async start(host: BreakerHost, options: BreakerSyncStart = {}): Promise<void> {
    if (this.host || this.closed) return
    this.host = host
    if (options.shares) this.shares = options.shares
    this.watch()
    this.offChange = host.onChange(() => this.watch())
    const firstSync = new Promise<void>((resolve) => {
      this.resolveFirstSync = resolve
    })
    const subscriber = this.client.duplicate({ connectionName: 'orch-breakers' })
    subscriber.on('error', () => undefined)
    subscriber.on('message', (channel: string, text: string) => {
      if (channel === this.keys.channel) this.receive(text, 'live')
    })
    // The two connections come back each in its own time: the states are read once both are up.
    subscriber.on('ready', this.onReady)
    this.client.on('ready', this.onReady)
    this.subscriber = subscriber
    if (this.client.status !== 'ready') return
    let timer: ReturnType<typeof setTimeout> | undefined
    await Promise.race([firstSync, new Promise<void>((resolve) => (timer = setTimeout(resolve, this.readyTimeoutMs)))])
    clearTimeout(timer)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.client.off('ready', this.onReady)
    this.offChange?.()
    for (const { off } of this.watched.values()) off()
    this.watched.clear()
    this.subscriber?.disconnect()
    this.subscriber = undefined
  }

  /** Watch the breaker of every backend the host has now; a backend added takes what others reported. */
  private watch(): void {
    const host = this.host
    if (!host || this.closed) return
    for (const [name, watched] of this.watched) {
      if (host.states.get(name)?.breaker === watched.breaker) continue
      watched.off()
      this.watched.delete(name)
    }
    for (const state of host.states.values()) {
      if (this.watched.has(state.name) || !this.shares(state.name)) continue
      const { breaker, name } = state
      this.watched.set(name, { breaker, off: breaker.onTransition((transition) => this.send(name, transition)) })
      const known = this.known.get(name)
      if (known) applyKnown(breaker, known, this.now())
    }
  }

  /**
   * (Re)connected: subscribe if not yet (ioredis subscribes again by itself after a reconnection), read the
   * stored states, send what Redis did not take meanwhile.
   */
  private async resync(): Promise<void> {
    const subscriber = this.subscriber
    if (!subscriber || this.closed || subscriber.status !== 'ready' || this.client.status !== 'ready') return
    try {
      if (!this.subscribed) {
        await subscriber.subscribe(this.keys.channel)
        this.subscribed = true
      }
      // Messages missed while cut off are in the hash; a Redis that restarted empty numbers from 1 again.
      this.lastSeq.clear()
      const stored = await this.client.hgetall(this.keys.state)
      this.answered()
      for (const text of Object.values(stored)) this.receive(text, 'stored')
      this.resend()
    } catch (error) {
      this.failed('reading the shared breaker states', error)
    } finally {
      this.resolveFirstSync()
    }
  }

  private send(name: string, transition: BreakerTransition): void {
    if (this.closed || !this.host) return
    const message: Omit<BreakerMessage, 'seq'> = {
      backend: name,
      state: transition.state,
      opened_at: transition.openedAt,
      reset_ms: transition.resetTimeoutMs,
      instance: this.instance,
      sent_at: this.now(),
    }
    this.unsent.delete(name)
    this.sending.set(name, (this.sending.get(name) ?? 0) + 1)
    let call: Promise<unknown>
    try {
      call = this.client.eval(PUBLISH_SCRIPT, 2, this.keys.seq, this.keys.state, name, JSON.stringify(message), this.keys.channel)
    } catch (error) {
      call = Promise.reject(error)
    }
    call
      .then(
        (seq) => {
          this.answered()
          this.raise(name, Number(seq))
        },
        (error) => {
          this.unsent.add(name)
          this.failed(`telling the other instances that ${name} is ${transition.state}`, error)
        },
      )
      .finally(() => this.settled(name))
  }

  /** A local transition is numbered (or lost): messages of others held for it are applied if newer. */
  private settled(name: string): void {
    const left = (this.sending.get(name) ?? 1) - 1
    if (left > 0) {
      this.sending.set(name, left)
      return
    }
    this.sending.delete(name)
    const held = this.held.get(name) ?? []
    this.held.delete(name)
    for (const { message, how } of held.sort((a, b) => a.message.seq - b.message.seq)) this.take(message, how)
  }

  /** Send again, as it stands now, each breaker whose transition Redis did not take. */
  private resend(): void {
    for (const name of [...this.unsent]) {
      const breaker = this.watched.get(name)?.breaker
      this.unsent.delete(name)
      if (!breaker) continue
      const openedAt = breaker.openedAtMs
      this.send(name, {
        state: openedAt === undefined ? 'closed' : 'open',
        openedAt: openedAt ?? 0,
        resetTimeoutMs: breaker.resetTimeoutMs,
      })
    }
  }

  private receive(text: string, how: Received): void {
    if (this.closed) return
    const message = parseMessage(text)
    if (!message) {
      this.log.debug(`shared breakers: ignored a message that is not a breaker state: ${text.slice(0, 200)}`)
      return
    }
    if (message.instance === this.instance) {
      this.raise(message.backend, message.seq)
      return
    }
    if (!this.shares(message.backend)) return
    // What this instance found while Redis was away is newer than what the hash kept; it is sent next.
    if (how === 'stored' && this.unsent.has(message.backend)) return
    if ((this.sending.get(message.backend) ?? 0) > 0) {
      const held = this.held.get(message.backend) ?? []
      held.push({ message, how })
      this.held.set(message.backend, held)
      return
    }
    this.take(message, how)
  }

  /** Apply another instance's message unless a later one was seen. */
  private take(message: BreakerMessage, how: Received): void {
    if ((this.lastSeq.get(message.backend) ?? 0) >= message.seq) return
    this.lastSeq.set(message.backend, message.seq)
    const now = this.now()
    // Live: the time left as the sender saw it when sending (no clock comparison); stored: by the clocks.
    const left = message.opened_at + message.reset_ms - (how === 'live' ? message.sent_at : now)
    const known: Known = { state: message.state, halfOpenAt: now + left }
    // A stored opening whose time is up says nothing a fresh breaker does not: it would only admit a trial.
    if (known.state === 'open' && left <= 0) {
      this.known.delete(message.backend)
      return
    }
    this.known.set(message.backend, known)
    const state = this.host?.states.get(message.backend)
    if (!state) return
    applyKnown(state.breaker, known, now)
    // Waiting requests may now fail fast (opened) or go (closed).
    this.host?.update(message.backend, {})
  }

  private raise(name: string, seq: number): void {
    if (Number.isFinite(seq) && seq > (this.lastSeq.get(name) ?? 0)) this.lastSeq.set(name, seq)
  }

  private answered(): void {
    if (!this.down) return
    this.down = false
    this.log.debug(`shared breakers: Redis at ${this.url} answers again`)
  }

  /** Logged once per outage: the breakers of this instance go on alone meanwhile. */
  private failed(what: string, error: unknown): void {
    if (this.down || this.closed) return
    this.down = true
    const reason = error instanceof Error ? error.message : String(error)
    this.log.debug(`shared breakers: ${what} failed (Redis at ${this.url}: ${reason}); breakers go on alone until it is back`)
  }
}

function applyKnown(breaker: CircuitBreaker, known: Known, now: number): void {
  if (known.state === 'closed') breaker.applyRemote('closed')
  else if (known.halfOpenAt > now) breaker.applyRemote('open', known.halfOpenAt - breaker.resetTimeoutMs)
}

const isNumber = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value)

export function parseMessage(text: string): BreakerMessage | undefined {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }
  if (value === null || typeof value !== 'object') return undefined
  const m = value as Record<string, unknown>
  const valid =
    isNumber(m.seq) &&
    typeof m.backend === 'string' &&
    (m.state === 'open' || m.state === 'closed') &&
    isNumber(m.opened_at) &&
    isNumber(m.reset_ms) &&
    typeof m.instance === 'string' &&
    isNumber(m.sent_at)
  return valid ? (m as unknown as BreakerMessage) : undefined
}
