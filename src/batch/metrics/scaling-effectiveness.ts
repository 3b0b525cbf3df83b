import * as v from 'valibot'
import { Bool, clamp, first, type MetricResult, Num, opt, pct, Scoring, Str } from './shared.ts'

const Event = v.looseObject({
  type: opt(Str),
  direction: opt(Str),
  reaction_seconds: opt(Num),
  duration_seconds: opt(Num),
  success: opt(Bool),
  status: opt(Str),
})
const Input = v.looseObject({
  events: opt(v.array(v.unknown())),
  scaling_events: opt(v.array(v.unknown())),
  saturation_minutes: opt(Num),
  window_minutes: opt(Num),
  target_reaction_seconds: opt(Num),
})

/** Whole words only: "incomplete" or "broken" must not read as a success. */
const SUCCESS_STATUS = /^(success|successful|succeeded|ok|complete|completed|done)$/i

export function scoreScalingEffectiveness(input: unknown): MetricResult {
  const s = new Scoring('scaling.effectiveness')
  const root = s.root(Input, input)
  if (!root) return s.none('input is not an object')
  const events = s.items(Event, first(root.events, root.scaling_events), 'events')
  if (first(root.events, root.scaling_events) === undefined) s.gap('events missing', 0.3)
  const target = root.target_reaction_seconds ?? 300
  if (root.target_reaction_seconds === undefined) s.gap('target_reaction_seconds missing; 300 s used', 0.05)
  const ok = events.filter((e) => first(e.success, e.status === undefined ? undefined : SUCCESS_STATUS.test(e.status.trim())) !== false)
  const timed = events.filter((e) => first(e.reaction_seconds, e.duration_seconds) !== undefined)
  const timely = timed.filter((e) => (first(e.reaction_seconds, e.duration_seconds) ?? 0) <= target)
  const successRate = events.length ? ok.length / events.length : 1
  const timelyRate = timed.length ? timely.length / timed.length : 1
  if (events.length && !timed.length) s.gap('events have no reaction_seconds', 0.15)
  let saturation: number | undefined
  if (root.saturation_minutes !== undefined && root.window_minutes) saturation = root.saturation_minutes / root.window_minutes
  else s.gap('saturation_minutes/window_minutes missing', 0.15)
  if (events.length === 0 && saturation === undefined) return s.none('neither scaling events nor saturation time given')
  // Saturated 10% of the window already means scaling did not keep up at all.
  const saturationScore = saturation === undefined ? 1 : 1 - clamp(saturation * 10)
  const score = 5 * (0.4 * successRate + 0.3 * timelyRate + 0.3 * saturationScore)
  return s.done(
    score,
    `${events.length} scaling event(s): ${pct(successRate)} succeeded, ${pct(timelyRate)} within ${target} s; saturated ${saturation === undefined ? 'unknown' : pct(saturation)} of the window.`,
    {
      events: events.length,
      success_rate: successRate,
      timely_rate: timelyRate,
      target_reaction_seconds: target,
      saturation_fraction: saturation ?? null,
    },
  )
}
