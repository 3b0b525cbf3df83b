/**
 * Erlang C (M/M/c) queueing, pure. Arrivals are Poisson, service times exponential, `servers` identical
 * servers share one FIFO queue. Everything is expressed through the offered load A = λ/μ (in erlangs) and
 * the mean service time, so no rate is ever divided by a tiny difference of two large numbers.
 *
 * The Erlang B recursion B(k) = A·B(k−1) / (k + A·B(k−1)) stays in [0, 1] at every step, so it neither
 * overflows (unlike A^c/c!) nor loses precision for c in the thousands or A close to c; Erlang C follows
 * from B as C = c·B / (c − A·(1 − B)).
 */

/** Waits and the chance of waiting for one server count; waits are Infinity when the queue is unstable. */
export interface QueueStats {
  servers: number
  /** ρ = A / c: the fraction of server time that is busy (≥ 1 means the queue grows without bound). */
  utilisation: number
  /** ρ < 1: the queue has a steady state; otherwise every figure below is the limit (1, Infinity). */
  stable: boolean
  /** Erlang C: probability that an arriving task waits for a free server. */
  pWait: number
  /** Mean time a task waits in the queue before service starts (excludes the service itself). */
  meanWaitSeconds: number
  /** The `percentile` quantile of that queue wait; 0 when at least that fraction of tasks never waits. */
  percentileWaitSeconds: number
}

/**
 * Erlang B for successive server counts, sharing one recursion: asking for c = 14 and then c = 16 costs 16
 * steps, not 30. Calls must not go backwards; that keeps memory constant for any c.
 */
export function erlangBStepper(load: number): (servers: number) => number {
  let k = 0
  let b = 1
  return (servers: number): number => {
    if (!Number.isInteger(servers) || servers < k) throw new RangeError(`servers must be an integer ≥ ${k}, got ${servers}`)
    while (k < servers) {
      k++
      b = (load * b) / (k + load * b)
    }
    return b
  }
}

/** Erlang B: probability that all `servers` are busy in a loss system (no queue) offered `load` erlangs. */
export function erlangB(servers: number, load: number): number {
  return erlangBStepper(load)(servers)
}

/** Erlang C from Erlang B; 1 when the queue is unstable (every task eventually waits). */
export function erlangCFromB(servers: number, load: number, b: number): number {
  if (load >= servers) return 1
  return (servers * b) / (servers - load * (1 - b))
}

/** Erlang C: probability that an arriving task has to wait, with `servers` servers and `load` erlangs. */
export function erlangC(servers: number, load: number): number {
  return erlangCFromB(servers, load, erlangB(servers, load))
}

/**
 * Queue statistics given C = P(wait). The M/M/c queue wait is 0 with probability 1 − C and otherwise
 * exponential with rate cμ − λ, so P(Wq > t) = C·e^{−(cμ−λ)t}: the mean is C/(cμ−λ) and the p-quantile is
 * max(0, ln(C/(1−p)) / (cμ−λ)). With μ = 1/s and A = λ/μ, cμ − λ = (c − A)/s.
 */
export function statsFromErlangC(servers: number, load: number, pWait: number, serviceSeconds: number, percentile: number): QueueStats {
  const utilisation = load / servers
  if (load >= servers) {
    const inf = Number.POSITIVE_INFINITY
    return { servers, utilisation, stable: false, pWait: 1, meanWaitSeconds: inf, percentileWaitSeconds: inf }
  }
  const drainSeconds = serviceSeconds / (servers - load) // 1 / (cμ − λ)
  const tail = pWait / (1 - percentile)
  return {
    servers,
    utilisation,
    stable: true,
    pWait,
    meanWaitSeconds: pWait * drainSeconds,
    // tail ≤ 1 also covers pWait = 0 (an underflowed B for a huge c), where the log would be −∞.
    percentileWaitSeconds: tail <= 1 ? 0 : Math.log(tail) * drainSeconds,
  }
}

/** Statistics for one server count: `load` erlangs, mean service `serviceSeconds`, wait quantile `percentile`. */
export function queueStats(servers: number, load: number, serviceSeconds: number, percentile = 0.95): QueueStats {
  return statsFromErlangC(servers, load, erlangC(servers, load), serviceSeconds, percentile)
}
