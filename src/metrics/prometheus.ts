/**
 * A small Prometheus registry: counters, gauges and histograms with labels, rendered in the text
 * exposition format 0.0.4. Each series (one set of label values) is a child object whose label text is
 * escaped once, when it is created; callers keep the child, so recording a value allocates nothing.
 * Collectors run before each render to copy values kept elsewhere (queue depth, breaker state).
 */

export type MetricType = 'counter' | 'gauge' | 'histogram'

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/

/** Durations of HTTP requests answered by orch itself: sub-millisecond to a long-poll. */
export const HTTP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
/** Durations of model calls: an embedding in milliseconds to a long generation in minutes. */
export const CALL_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300]
/** Waits for a slot: none at all up to the queue timeout. */
export const WAIT_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
/** Generation speed in tokens per second. */
export const RATE_BUCKETS = [1, 2.5, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000]

/** A number as the text format writes it. */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN'
  if (value === Number.POSITIVE_INFINITY) return '+Inf'
  if (value === Number.NEGATIVE_INFINITY) return '-Inf'
  return String(value)
}

export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

export function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
}

function labelText(names: readonly string[], values: readonly string[]): string {
  return names.map((name, i) => `${name}="${escapeLabelValue(values[i] ?? '')}"`).join(',')
}

export class CounterChild {
  value = 0
  constructor(readonly labels: string) {}
  inc(by = 1): void {
    if (by < 0) throw new RangeError(`a counter only goes up (inc(${by}))`)
    this.value += by
  }
  /** Mirror a monotonic count kept elsewhere (engine and scheduler counters). */
  set(value: number): void {
    this.value = value
  }
}

export class GaugeChild {
  value = 0
  constructor(readonly labels: string) {}
  set(value: number): void {
    this.value = value
  }
  inc(by = 1): void {
    this.value += by
  }
  dec(by = 1): void {
    this.value -= by
  }
}

export class HistogramChild {
  /** Observations per bucket, not cumulative; the last slot is +Inf. */
  readonly counts: Float64Array
  sum = 0
  count = 0
  constructor(
    readonly labels: string,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length + 1)
  }
  observe(value: number): void {
    const bounds = this.bounds
    let i = 0
    while (i < bounds.length && value > (bounds[i] as number)) i++
    this.counts[i] = (this.counts[i] as number) + 1
    this.sum += value
    this.count++
  }
}

type Child = CounterChild | GaugeChild | HistogramChild

export class Family<C extends Child> {
  private readonly children = new Map<string, C>()

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: MetricType,
    readonly labelNames: readonly string[],
    private readonly constLabels: string,
    private readonly make: (labels: string) => C,
  ) {}

  /** The series for these label values (in `labelNames` order), created on first use. Keep it for hot paths. */
  labels(...values: string[]): C {
    if (values.length !== this.labelNames.length) {
      throw new RangeError(
        `${this.name} takes ${this.labelNames.length} label values (${this.labelNames.join(', ')}), got ${values.length}`,
      )
    }
    const key = values.join('\u0000')
    let child = this.children.get(key)
    if (!child) {
      const own = labelText(this.labelNames, values)
      child = this.make([this.constLabels, own].filter(Boolean).join(','))
      this.children.set(key, child)
    }
    return child
  }

  /** Forget every series (collectors that rebuild a family from scratch, e.g. per backend). */
  reset(): void {
    this.children.clear()
  }

  get size(): number {
    return this.children.size
  }

  render(out: string[], bucketLabels: readonly string[]): void {
    out.push(`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`)
    for (const child of this.children.values()) {
      if (child instanceof HistogramChild) renderHistogram(out, this.name, child, bucketLabels)
      else out.push(`${this.name}${braces(child.labels)} ${formatValue(child.value)}`)
    }
  }
}

function braces(labels: string): string {
  return labels ? `{${labels}}` : ''
}

function renderHistogram(out: string[], name: string, child: HistogramChild, bucketLabels: readonly string[]): void {
  const prefix = child.labels ? `${child.labels},` : ''
  let cumulative = 0
  for (let i = 0; i < child.counts.length; i++) {
    cumulative += child.counts[i] as number
    out.push(`${name}_bucket{${prefix}le="${bucketLabels[i]}"} ${cumulative}`)
  }
  out.push(`${name}_sum${braces(child.labels)} ${formatValue(child.sum)}`, `${name}_count${braces(child.labels)} ${child.count}`)
}

interface Entry {
  family: Family<Child>
  bucketLabels: readonly string[]
}

export interface RegistryOptions {
  /** Labels on every series, e.g. `{ instance: 'host-1' }`. */
  constLabels?: Record<string, string>
}

export class Registry {
  private readonly entries = new Map<string, Entry>()
  private readonly collectors: Array<() => void> = []
  private readonly constNames: string[]
  private readonly constText: string

  constructor(options: RegistryOptions = {}) {
    const labels = options.constLabels ?? {}
    this.constNames = Object.keys(labels)
    for (const name of this.constNames) checkLabelName(name)
    this.constText = labelText(this.constNames, Object.values(labels))
  }

  /** A counter; `_total` is appended to the name unless it is there already. */
  counter(name: string, help: string, labelNames: readonly string[] = []): Family<CounterChild> {
    const full = name.endsWith('_total') ? name : `${name}_total`
    return this.add(full, help, 'counter', labelNames, [], (l) => new CounterChild(l))
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Family<GaugeChild> {
    return this.add(name, help, 'gauge', labelNames, [], (l) => new GaugeChild(l))
  }

  /** A histogram with these upper bounds (increasing; `+Inf` is added). */
  histogram(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]): Family<HistogramChild> {
    if (labelNames.includes('le')) throw new Error(`${name}: "le" is reserved for histogram buckets`)
    const bounds = buckets.filter((b) => Number.isFinite(b))
    if (bounds.length === 0 || bounds.some((b, i) => i > 0 && b <= (bounds[i - 1] as number))) {
      throw new Error(`${name}: buckets must be finite and strictly increasing`)
    }
    const bucketLabels = [...bounds.map(formatValue), '+Inf']
    return this.add(name, help, 'histogram', labelNames, bucketLabels, (l) => new HistogramChild(l, bounds))
  }

  /** Run before every render, to set values read from elsewhere. */
  onCollect(collector: () => void): void {
    this.collectors.push(collector)
  }

  /** The text exposition format 0.0.4 (`Content-Type: text/plain; version=0.0.4`). */
  render(): string {
    for (const collect of this.collectors) collect()
    const out: string[] = []
    for (const { family, bucketLabels } of this.entries.values()) family.render(out, bucketLabels)
    return `${out.join('\n')}\n`
  }

  private add<C extends Child>(
    name: string,
    help: string,
    type: MetricType,
    labelNames: readonly string[],
    bucketLabels: readonly string[],
    make: (labels: string) => C,
  ): Family<C> {
    if (!METRIC_NAME.test(name)) throw new Error(`invalid metric name "${name}"`)
    if (this.entries.has(name)) throw new Error(`metric "${name}" is registered twice`)
    const all = [...this.constNames, ...labelNames]
    for (const label of labelNames) checkLabelName(label)
    if (new Set(all).size !== all.length) throw new Error(`${name}: a label name repeats (${all.join(', ')})`)
    const family = new Family<C>(name, help, type, labelNames, this.constText, make)
    this.entries.set(name, { family: family as unknown as Family<Child>, bucketLabels })
    return family
  }
}

function checkLabelName(name: string): void {
  if (!LABEL_NAME.test(name) || name.startsWith('__')) throw new Error(`invalid label name "${name}"`)
}
