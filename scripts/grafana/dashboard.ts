/**
 * The Grafana dashboard of orch's Prometheus metrics (docs/grafana.md), built with the Grafana foundation
 * SDK and written in the classic JSON model for Dashboards → Import: the Prometheus data source is the
 * `DS_PROMETHEUS` input, chosen at import, so no panel names a data source uid of its own.
 *
 *   bun scripts/grafana/dashboard.ts           writes docs/grafana/orch-dashboard.json
 *   bun scripts/grafana/dashboard.ts --check   exits 1 when the committed file differs
 *   --file PATH                                 another file instead (relative to the working directory)
 *
 * Only series orch serves on /metrics (src/metrics/engine-metrics.ts, docs/operations.md#metrics) are used.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { BigValueColorMode, BigValueGraphMode, ReduceDataOptionsBuilder } from '@grafana/grafana-foundation-sdk/common'
import {
  DashboardBuilder,
  type DataSourceRef,
  MappingType,
  QueryVariableBuilder,
  RowBuilder,
  VariableRefresh,
  VariableSort,
} from '@grafana/grafana-foundation-sdk/dashboard'
import { DataqueryBuilder } from '@grafana/grafana-foundation-sdk/prometheus'
import { PanelBuilder as StatPanel } from '@grafana/grafana-foundation-sdk/stat'
import { PanelBuilder as TimeseriesPanel } from '@grafana/grafana-foundation-sdk/timeseries'

const ROOT = resolve(import.meta.dir, '..', '..')
export const DASHBOARD_PATH = 'docs/grafana/orch-dashboard.json'
/** The uid of the dashboard, kept across versions so that a new import replaces the old one. */
export const DASHBOARD_UID = 'orch-overview'
/** The import input every data source reference points at. */
export const DS_INPUT = 'DS_PROMETHEUS'
const DS: DataSourceRef = { type: 'prometheus', uid: `\${${DS_INPUT}}` }

const I = 'instance=~"$instance"'
const IM = `${I}, model=~"$model"`
const RATE = '[$__rate_interval]'
const H = 8

type Panel = TimeseriesPanel | StatPanel

interface Query {
  expr: string
  legend: string
}

function target(q: Query, refId: string): DataqueryBuilder {
  return new DataqueryBuilder().datasource(DS).refId(refId).expr(q.expr).legendFormat(q.legend).range()
}

function timeseries(title: string, description: string, unit: string, queries: Query[], w: number): TimeseriesPanel {
  const panel = new TimeseriesPanel()
    .title(title)
    .description(description)
    .datasource(DS)
    .unit(unit)
    .min(0)
    .fillOpacity(10)
    .height(H)
    .span(w)
  queries.forEach((q, i) => {
    panel.withTarget(target(q, String.fromCharCode(65 + i)))
  })
  return panel
}

/** p50 and p99 of a histogram, summed over everything but `le` and the `by` labels. */
function quantiles(metric: string, by: string[], matchers: string): Query[] {
  const labels = by.map((l) => `{{${l}}}`).join(' ')
  return [0.5, 0.99].map((q) => ({
    expr: `histogram_quantile(${q}, sum by (le, ${by.join(', ')}) (rate(${metric}_bucket{${matchers}}${RATE})))`,
    legend: `${labels} p${q * 100}`,
  }))
}

const rate = (metric: string, by: string[], matchers: string): string => `sum by (${by.join(', ')}) (rate(${metric}{${matchers}}${RATE}))`

function stateStat(title: string, description: string, expr: string, states: Record<string, [string, string]>, w: number): StatPanel {
  const options = Object.fromEntries(Object.entries(states).map(([value, [text, color]], index) => [value, { text, color, index }]))
  return new StatPanel()
    .title(title)
    .description(description)
    .datasource(DS)
    .withTarget(target({ expr, legend: '{{instance}} {{backend}}' }, 'A'))
    .mappings([{ type: MappingType.ValueToText, options }])
    .colorMode(BigValueColorMode.Background)
    .graphMode(BigValueGraphMode.None)
    .reduceOptions(new ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false))
    .height(H)
    .span(w)
}

interface Row {
  title: string
  panels: Panel[]
}

function rows(): Row[] {
  return [
    {
      title: 'Throughput',
      panels: [
        timeseries(
          'HTTP requests/s',
          'Requests orch serve answered, every route (orch_http_request_duration_seconds_count)',
          'reqps',
          [{ expr: rate('orch_http_request_duration_seconds_count', ['instance'], I), legend: '{{instance}}' }],
          8,
        ),
        timeseries(
          'Model requests/s',
          'Slots asked of the scheduler, cache hits excluded (orch_scheduler_requests_total)',
          'reqps',
          [{ expr: rate('orch_scheduler_requests_total', ['instance'], I), legend: '{{instance}}' }],
          8,
        ),
        timeseries(
          'Backend calls/s by model',
          'Backend calls started per second, whatever their outcome (orch_backend_request_duration_seconds_count)',
          'reqps',
          [{ expr: rate('orch_backend_request_duration_seconds_count', ['instance', 'model'], IM), legend: '{{instance}} {{model}}' }],
          8,
        ),
      ],
    },
    {
      title: 'Latency',
      panels: [
        timeseries(
          'HTTP latency p50 / p99',
          'Time to answer an HTTP request; for streams, to the response headers',
          's',
          quantiles('orch_http_request_duration_seconds', ['instance'], I),
          12,
        ),
        timeseries(
          'Backend call duration p50 / p99',
          'A backend call from its slot to its last byte, per model',
          's',
          quantiles('orch_backend_request_duration_seconds', ['instance', 'model'], IM),
          12,
        ),
      ],
    },
    {
      title: 'Generation',
      panels: [
        timeseries(
          'Time to first token p50 / p99',
          'Successful chat and generate calls, from the slot to the first chunk (queue wait excluded)',
          's',
          quantiles('orch_time_to_first_token_seconds', ['instance', 'model'], IM),
          8,
        ),
        timeseries(
          'Tokens/s p50 / p99',
          'Generation speed of a successful call, per model',
          'none',
          quantiles('orch_tokens_per_second', ['instance', 'model'], IM),
          8,
        ),
        timeseries(
          'Mean tokens/s',
          'Average generation speed of the calls in each interval (sum / count of orch_tokens_per_second)',
          'none',
          [
            {
              expr: `${rate('orch_tokens_per_second_sum', ['instance', 'model'], IM)} / ${rate('orch_tokens_per_second_count', ['instance', 'model'], IM)}`,
              legend: '{{instance}} {{model}}',
            },
          ],
          8,
        ),
      ],
    },
    {
      title: 'Queue and capacity',
      panels: [
        timeseries(
          'Queue depth',
          'Requests waiting for a slot plus durable tasks queued (env_queue_depth)',
          'short',
          [{ expr: `sum by (instance) (env_queue_depth{${I}})`, legend: '{{instance}}' }],
          8,
        ),
        timeseries(
          'Oldest wait',
          'How long the oldest waiter has waited, now: slot (the oldest request waiting for a backend slot), task (the durable task due first, since it became due); 0 when none waits',
          's',
          [{ expr: `max by (instance, kind) (orch_queue_oldest_wait_seconds{${I}})`, legend: '{{instance}} {{kind}}' }],
          8,
        ),
        timeseries(
          'Slot wait p50 / p99',
          'How long calls waited for a slot (queue, limits) before they started',
          's',
          quantiles('gpu_wait_seconds', ['instance', 'model'], IM),
          8,
        ),
        timeseries(
          'Backend calls in flight vs limit',
          'Calls running on each backend, and the concurrency it may run at once',
          'short',
          [
            { expr: `sum by (instance, backend) (orchestrator_inflight_tasks{${I}})`, legend: '{{instance}} {{backend}} in flight' },
            { expr: `sum by (instance, backend) (orchestrator_concurrency_limit{${I}})`, legend: '{{instance}} {{backend}} limit' },
          ],
          12,
        ),
        timeseries(
          'Durable tasks running vs runner limit',
          'Tasks running (in a cluster: of the whole cluster) and the tasks this process runs at once',
          'short',
          [
            { expr: `sum by (instance) (orch_tasks{${I}, state="running"})`, legend: '{{instance}} running' },
            { expr: `sum by (instance) (orch_task_runner_limit{${I}})`, legend: '{{instance}} limit' },
          ],
          12,
        ),
      ],
    },
    {
      title: 'Errors',
      panels: [
        timeseries(
          'Model request errors/s by kind',
          'backend (the call failed), queue_timeout, refused (queue full, no backend, breaker open, unknown model), dropped',
          'reqps',
          [{ expr: rate('orchestrator_task_errors_total', ['instance', 'reason'], I), legend: '{{instance}} {{reason}}' }],
          8,
        ),
        timeseries(
          'Backend call outcomes/s',
          'Backend calls by outcome: success, error, cancelled (the client stopped reading), per model',
          'reqps',
          [
            {
              expr: rate('orch_backend_calls_total', ['instance', 'backend', 'model', 'outcome'], IM),
              legend: '{{instance}} {{backend}} {{model}} {{outcome}}',
            },
          ],
          8,
        ),
        timeseries(
          'Error rate',
          'Failed model requests / model requests over the last sampling interval (env_error_rate)',
          'percentunit',
          [{ expr: `max by (instance) (env_error_rate{${I}})`, legend: '{{instance}}' }],
          8,
        ),
      ],
    },
    {
      title: 'Backends',
      panels: [
        stateStat(
          'Breaker state',
          'Circuit breaker of each backend: closed (calls go through), half-open (one trial call), open (refused)',
          `max by (instance, backend) (orch_breaker_state{${I}})`,
          { '0': ['closed', 'green'], '1': ['half-open', 'yellow'], '2': ['open', 'red'] },
          12,
        ),
        stateStat(
          'Backend health',
          'Whether each backend passed its last health check',
          `min by (instance, backend) (orch_backend_up{${I}})`,
          { '0': ['down', 'red'], '1': ['up', 'green'] },
          12,
        ),
      ],
    },
    {
      title: 'Cache',
      panels: [
        timeseries(
          'Cache hits and misses/s',
          'Response cache hits (answered without a backend call) and misses (cacheable requests sent to a backend)',
          'reqps',
          [
            { expr: rate('orch_cache_hits_total', ['instance'], I), legend: '{{instance}} hits' },
            { expr: rate('orch_cache_misses_total', ['instance'], I), legend: '{{instance}} misses' },
          ],
          12,
        ),
        timeseries(
          'Cache hit rate',
          'Hits / (hits + misses)',
          'percentunit',
          [
            {
              expr: `${rate('orch_cache_hits_total', ['instance'], I)} / (${rate('orch_cache_hits_total', ['instance'], I)} + ${rate('orch_cache_misses_total', ['instance'], I)})`,
              legend: '{{instance}}',
            },
          ],
          12,
        ),
      ],
    },
    {
      title: 'Pools and restarts',
      panels: [
        timeseries(
          'Pool workers',
          'Workers of each pool: current (asked for), ready, desired (the autoscaler), min and max',
          'short',
          [{ expr: `sum by (instance, pool, kind) (orch_pool_workers{${I}})`, legend: '{{instance}} {{pool}} {{kind}}' }],
          6,
        ),
        timeseries(
          'Pool worker restarts',
          'Restarts of each pool worker per interval: after a crash or a failed start, after missed heartbeats, a recycle (worker_ttl, worker_max_requests), or an asked restart (orch pool restart, orch pool reset)',
          'short',
          [
            {
              expr: `sum by (instance, pool, worker) (increase(orch_pool_worker_restarts_total{${I}}${RATE}))`,
              legend: '{{instance}} {{pool}} {{worker}}',
            },
          ],
          6,
        ),
        timeseries(
          'Scaling decisions',
          'Autoscaling decisions that changed a pool, per interval',
          'short',
          [
            {
              expr: `sum by (instance, direction) (increase(orch_scale_decisions_total{${I}}${RATE}))`,
              legend: '{{instance}} {{direction}}',
            },
          ],
          6,
        ),
        timeseries(
          'orch serve restarts',
          'Restarts of the orch serve process in the last hour (changes of process_start_time_seconds)',
          'short',
          [{ expr: `changes(process_start_time_seconds{${I}}[1h])`, legend: '{{instance}}' }],
          6,
        ),
      ],
    },
  ]
}

function variable(name: string, label: string, query: string): QueryVariableBuilder {
  return new QueryVariableBuilder(name)
    .label(label)
    .datasource(DS)
    .query(query)
    .definition(query)
    .refresh(VariableRefresh.OnTimeRangeChanged)
    .sort(VariableSort.AlphabeticalAsc)
    .multi(true)
    .includeAll(true)
    .allValue('.*')
    .current({ text: 'All', value: '$__all', selected: true })
}

/** Keys sorted at every level: the file stays the same from one run to the next. */
function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys)
  if (value === null || typeof value !== 'object') return value
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((key) => [key, sortKeys((value as Record<string, unknown>)[key])]),
  )
}

/** The dashboard in Grafana's classic JSON model, ready for Dashboards → Import. */
export function buildDashboard(): Record<string, unknown> {
  const builder = new DashboardBuilder('orch')
    .uid(DASHBOARD_UID)
    .description("orch serve's Prometheus metrics: throughput, latency, generation, queue, errors, backends, cache, pools")
    .tags(['orch', 'llm'])
    .refresh('30s')
    .time({ from: 'now-1h', to: 'now' })
    .timezone('browser')
    .withVariable(variable('instance', 'Instance', 'label_values(orch_build_info, instance)'))
    .withVariable(variable('model', 'Model', 'label_values(orch_backend_request_duration_seconds_count{instance=~"$instance"}, model)'))
  for (const row of rows()) {
    builder.withRow(new RowBuilder(row.title))
    for (const panel of row.panels) builder.withPanel(panel)
  }
  const dashboard = builder.build() as unknown as Record<string, unknown>
  const panels = dashboard.panels as Array<Record<string, unknown>>
  panels.forEach((panel, i) => {
    panel.id = i + 1
    if (panel.type === 'timeseries') {
      const options = panel.options as { legend: Record<string, unknown> }
      options.legend = { ...options.legend, showLegend: true, displayMode: 'table', placement: 'bottom', calcs: ['mean', 'max'] }
    }
  })
  return {
    __inputs: [
      {
        name: DS_INPUT,
        label: 'Prometheus',
        description: 'The Prometheus that scrapes orch serve',
        type: 'datasource',
        pluginId: 'prometheus',
        pluginName: 'Prometheus',
      },
    ],
    __requires: [
      { type: 'grafana', id: 'grafana', name: 'Grafana', version: '10.0.0' },
      { type: 'datasource', id: 'prometheus', name: 'Prometheus', version: '1.0.0' },
      { type: 'panel', id: 'stat', name: 'Stat', version: '' },
      { type: 'panel', id: 'timeseries', name: 'Time series', version: '' },
    ],
    ...dashboard,
    id: null,
  }
}

/** The committed file's text: keys sorted, 2-space JSON, a trailing newline. */
export function renderDashboard(): string {
  return `${JSON.stringify(sortKeys(buildDashboard()), null, 2)}\n`
}

function main(args: string[]): number {
  const check = args.includes('--check')
  const at = args.indexOf('--file')
  const file = at >= 0 && args[at + 1] ? resolve(args[at + 1] as string) : join(ROOT, DASHBOARD_PATH)
  const shown = at >= 0 ? file : DASHBOARD_PATH
  const text = renderDashboard()
  const current = existsSync(file) ? readFileSync(file, 'utf8') : undefined
  if (current === text) return 0
  if (check) {
    process.stderr.write(`${shown} is out of date; run bun scripts/grafana/dashboard.ts\n`)
    return 1
  }
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(file, text)
  process.stdout.write(`wrote ${shown}\n`)
  return 0
}

if (import.meta.main) process.exitCode = main(process.argv.slice(2))
