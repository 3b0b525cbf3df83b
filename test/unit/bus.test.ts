/** The in-process event bus: its ring buffer keeps the last `capacity` events for resuming SSE clients. */
import { describe, expect, test } from 'bun:test'
import { LocalBus } from '../../src/bus/local.ts'
import { prng } from '../helpers/prng.ts'

describe('LocalBus', () => {
  test('since(id) answers like a plain list of the last `capacity` events, through many wraps of the ring', () => {
    for (const capacity of [1, 2, 7, 64]) {
      const bus = new LocalBus(capacity, 1000)
      const all: number[] = []
      const random = prng(capacity)
      for (let n = 0; n < capacity * 9 + 3; n++) {
        all.push(bus.publish('task', { n }).id)
        const kept = all.slice(-capacity)
        const oldest = kept[0] as number
        const id = Math.floor(999 + random() * (all.length + 2))
        // Older than the buffer, or an id the bus never gave: the client cannot resume from it.
        const expected = id < oldest - 1 || id > (all.at(-1) as number) ? undefined : kept.filter((e) => e > id)
        expect({ id, got: bus.since(id)?.map((e) => e.id) }).toEqual({ id, got: expected })
      }
      expect(bus.lastId).toBe(all.at(-1) as number)
    }
  })

  test('an empty bus has nothing to replay and nothing missed up to its last id', () => {
    const bus = new LocalBus(4, 50)
    expect(bus.since(49)).toEqual([])
    expect(bus.since(10)).toEqual([])
    expect(bus.since(60)).toBeUndefined()
    expect(() => new LocalBus(0)).toThrow('at least 1 event')
  })

  test('every subscriber hears every event, a failing one breaks nothing, and unsubscribing stops it', () => {
    const bus = new LocalBus(3)
    const heard: number[] = []
    bus.subscribe(() => {
      throw new Error('boom')
    })
    const stop = bus.subscribe((e) => heard.push(e.id))
    bus.publish('task', {})
    bus.publish('worker', {})
    stop()
    bus.publish('task', {})
    expect(heard).toEqual([1, 2])
  })
})
