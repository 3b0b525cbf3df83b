/**
 * The Grafana dashboard (docs/grafana/orch-dashboard.json, made by scripts/grafana/dashboard.ts): the
 * committed file is what the generator makes; every expression is PromQL; every metric it uses has samples
 * on the /metrics of a real orch serve after real traffic; it names no data source but the import input;
 * its panels fit the 24 columns without overlapping. Each check is also shown to catch a broken copy.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DASHBOARD_PATH, renderDashboard } from '../../scripts/grafana/dashboard.ts'
import { validateData } from '../../src/config/validate.ts'
import { tempDir } from '../helpers/cli.ts'
import {
  type Dashboard,
  DS_UID,
  expressionsOf,
  foreignDatasources,
  layoutProblems,
  metricNames,
  missingMetrics,
  panelsOf,
  promqlErrors,
} from '../helpers/grafana-checks.ts'
import { driveTraffic } from '../helpers/metrics-traffic.ts'
import { startTestServe, type TestServe } from '../helpers/serve.ts'

const ROOT = join(import.meta.dir, '..', '..')
const MODEL_SERVER = join(import.meta.dir, '..', 'helpers', 'model-server.ts')
const committed = () => JSON.parse(readFileSync(join(ROOT, DASHBOARD_PATH), 'utf8')) as Dashboard
const copy = (): Dashboard => structuredClone(committed())

describe('the committed dashboard', () => {
  test('is what scripts/grafana/dashboard.ts makes: keys sorted, 2-space JSON, a trailing newline', () => {
    const text = readFileSync(join(ROOT, DASHBOARD_PATH), 'utf8')
    expect(text).toBe(renderDashboard())
    expect(text.endsWith('}\n')).toBe(true)
    expect(JSON.stringify(committed())).toBe(JSON.stringify(JSON.parse(renderDashboard())))
    expect(Object.keys(committed())).toEqual(Object.keys(committed()).sort())
  })

  test('the generator says when the file is out of date (--check exits 1), and rewrites it', () => {
    const dir = tempDir('orch-grafana-')
    try {
      const file = join(dir.path, 'orch-dashboard.json')
      const run = (...args: string[]) =>
        Bun.spawnSync([process.execPath, join(ROOT, 'scripts/grafana/dashboard.ts'), ...args, '--file', file], {
          stdout: 'pipe',
          stderr: 'pipe',
        })
      writeFileSync(file, renderDashboard().replace('"Throughput"', '"Traffic"'))
      const stale = run('--check')
      expect(stale.exitCode).toBe(1)
      expect(stale.stderr.toString()).toContain('is out of date; run bun scripts/grafana/dashboard.ts')
      expect(run().exitCode).toBe(0)
      expect(readFileSync(file, 'utf8')).toBe(renderDashboard())
      const fresh = run('--check')
      expect([fresh.exitCode, fresh.stderr.toString()]).toEqual([0, ''])
    } finally {
      dir.cleanup()
    }
  })

  test('has the instance and model variables, filled by label_values queries', () => {
    const vars = (committed().templating.list as Dashboard[]).map((v) => [v.name, v.type, v.query])
    expect(vars).toEqual([
      ['instance', 'query', 'label_values(orch_build_info, instance)'],
      ['model', 'query', 'label_values(orch_backend_request_duration_seconds_count{instance=~"$instance"}, model)'],
    ])
  })

  test('every target filters on $instance, and those of series with a model label on $model too', () => {
    const modelled = new Set([
      'orch_backend_request_duration_seconds',
      'orch_time_to_first_token_seconds',
      'orch_tokens_per_second',
      'gpu_wait_seconds',
    ])
    for (const { panel, expr } of expressionsOf(committed())) {
      expect(`${panel}: ${expr.includes('instance=~"$instance"')}`).toBe(`${panel}: true`)
      const usesModel = metricNames(expr).some((n) => modelled.has(n.replace(/_(bucket|sum|count)$/, '')))
      if (usesModel) expect(`${panel}: ${expr.includes('model=~"$model"')}`).toBe(`${panel}: true`)
    }
  })

  test('latency panels take quantiles of the histograms summed by le', () => {
    const quantiles = expressionsOf(committed()).filter((e) => e.expr.startsWith('histogram_quantile('))
    expect(quantiles.length).toBeGreaterThanOrEqual(10)
    for (const { expr } of quantiles)
      expect(expr).toMatch(
        /^histogram_quantile\(0\.(5|99), sum by \(le, [a-z, ]+\) \(rate\(\w+_bucket\{[^}]*\}\[\$__rate_interval\]\)\)\)$/,
      )
  })
})

describe('every expression is PromQL', () => {
  test('lezer-promql finds no error node in any target', () => {
    const exprs = expressionsOf(committed())
    expect(exprs.length).toBeGreaterThan(25)
    const errors = exprs.flatMap(({ panel, expr }) => promqlErrors(expr).map((e) => `${panel}: ${e}`))
    expect(errors).toEqual([])
  })

  test('a broken expression is caught', () => {
    const broken = copy()
    const panel = panelsOf(broken).find((p) => p.targets?.length) as Dashboard
    panel.targets[0].expr = 'sum by (instance) (rate(orch_cache_hits_total{instance=~"$instance"}[$__rate_interval])'
    expect(expressionsOf(broken).flatMap(({ expr }) => promqlErrors(expr)).length).toBeGreaterThan(0)
    expect(promqlErrors('rate(orch_cache_hits_total[5m]) +')).not.toEqual([])
    expect(promqlErrors('')).toEqual(['empty expression'])
  })
})

describe('the data source is the import input', () => {
  test('every panel, target and variable uses the DS_PROMETHEUS input, declared in __inputs', () => {
    const d = committed()
    expect(d.__inputs).toEqual([expect.objectContaining({ name: 'DS_PROMETHEUS', type: 'datasource', pluginId: 'prometheus' })])
    expect(foreignDatasources(d)).toEqual([])
    expect(JSON.stringify(d)).not.toMatch(/"uid":\s*"(?!\$\{DS_PROMETHEUS\}|orch-overview")/)
  })

  test('a literal uid, another type, or a missing input is caught', () => {
    const literal = copy()
    panelsOf(literal)[1]!.targets[0].datasource = { type: 'prometheus', uid: 'P1809F7CD0C75ACF3' }
    expect(foreignDatasources(literal)).toEqual([expect.stringContaining('P1809F7CD0C75ACF3')])
    const loki = copy()
    panelsOf(loki)[1]!.datasource = { type: 'loki', uid: DS_UID }
    expect(foreignDatasources(loki)).toHaveLength(1)
    const variable = copy()
    variable.templating.list[0].datasource.uid = 'prom'
    expect(foreignDatasources(variable)).toHaveLength(1)
    const noInput = copy()
    noInput.__inputs = []
    expect(foreignDatasources(noInput)).toEqual(['__inputs has no DS_PROMETHEUS datasource input'])
  })
})

describe('the layout', () => {
  test('panels fit the 24 columns and none overlaps another; every group has its row', () => {
    const d = committed()
    expect(layoutProblems(d)).toEqual([])
    expect(
      panelsOf(d)
        .filter((p) => p.type === 'row')
        .map((p) => p.title),
    ).toEqual(['Throughput', 'Latency', 'Generation', 'Queue and capacity', 'Errors', 'Backends', 'Cache', 'Pools and restarts'])
    expect(new Set(panelsOf(d).map((p) => p.id)).size).toBe(panelsOf(d).length)
  })

  test('two panels at the same place, or one past the 24th column, are caught', () => {
    const same = copy()
    const [a, b] = panelsOf(same).filter((p) => p.type !== 'row') as [Dashboard, Dashboard]
    b.gridPos = { ...a.gridPos }
    expect(layoutProblems(same)).toEqual([`"${a.title}" and "${b.title}" overlap`])
    const wide = copy()
    const last = panelsOf(wide).at(-1) as Dashboard
    last.gridPos = { ...last.gridPos, w: last.gridPos.w + 1 }
    expect(layoutProblems(wide)).toEqual([expect.stringContaining(`"${last.title}": `)])
  })
})

describe('the metrics it uses are the ones orch serve exposes', () => {
  let t: TestServe | undefined
  let text = ''

  beforeAll(async () => {
    const { config, issues } = validateData({
      pools: [
        {
          name: 'gen',
          profile: 'command',
          api: 'ollama',
          models: ['test-model'],
          command: [process.execPath, MODEL_SERVER, '--port', '{port}'],
          pool_size: 1,
        },
      ],
    })
    expect(issues).toEqual([])
    t = await startTestServe({
      tweak: (c) => {
        c.infrastructure_system.performance_monitoring.export_formats = ['none']
        c.pools = config?.pools ?? []
      },
    })
    await driveTraffic(t)
    // A streamed chat through the HTTP API: the first chunk, then the tokens (time to first token, tokens/s).
    const streamed = await t.fetch('/api/chat', {
      method: 'POST',
      body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'stream these five words' }], stream: true }),
    })
    expect(streamed.status).toBe(200)
    expect(await streamed.text()).toContain('"done":true')
    for (let i = 0; i < 200 && !/orch_pool_workers\{[^}]*kind="ready"\} 1/.test(text); i++) {
      await Bun.sleep(50)
      text = await (await t.fetch('/metrics')).text()
    }
  }, 60_000)

  afterAll(async () => {
    await t?.stop()
  })

  test('each metric name of the dashboard has samples on /metrics (a histogram its _bucket, _sum and _count)', () => {
    const used = new Set(expressionsOf(committed()).flatMap(({ expr }) => metricNames(expr)))
    expect(used.size).toBeGreaterThan(15)
    expect(missingMetrics(committed(), text)).toEqual([])
  })

  test('a misspelt metric name is caught', () => {
    const typo = copy()
    const panel = panelsOf(typo).find((p) => JSON.stringify(p.targets ?? []).includes('orch_tokens_per_second_bucket')) as Dashboard
    panel.targets[0].expr = panel.targets[0].expr.replace('orch_tokens_per_second_bucket', 'orch_token_per_second_bucket')
    expect(missingMetrics(typo, text)).toEqual(['orch_token_per_second_bucket'])
    // A histogram is whole or missing: without its _sum on /metrics the dashboard's use of it is refused.
    const noSum = text
      .split('\n')
      .filter((l) => !l.startsWith('orch_tokens_per_second_sum'))
      .join('\n')
    expect(missingMetrics(committed(), noSum)).toEqual(['orch_tokens_per_second_sum'])
  })
})
