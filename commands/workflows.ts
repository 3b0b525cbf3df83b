/**
 * `orch workflows`: create, list, run and schedule workflows (DAGs of tasks, cron) on a running
 * `orch serve`, over its HTTP API. The URL comes from --url or the config's server.host/port; the token
 * from server.token (or ORCH_SERVER_TOKEN).
 */
import { readFileSync } from 'node:fs'
import YAML from 'yaml'
import { ExitCode, OrchError, UsageError } from '../src/core/errors.ts'
import { defineOrchCommand, globalArgs, printJson, printText } from './_args.ts'
import { type ServeClient, serveClient, urlArg } from './_client.ts'
import { formatTable } from './_table.ts'

const idArg = { id: { type: 'positional', required: true, valueHint: 'ID', description: 'Workflow id or name' } } as const

const when = (ms: number | null | undefined) => (ms === null || ms === undefined ? '-' : new Date(ms).toISOString().replace('.000Z', 'Z'))

const table = (header: string[], rows: string[][]): string => formatTable([header, ...rows])

function runLine(run: any): string {
  const why = run.trigger === 'schedule' ? `schedule ${when(run.scheduled_for)}` : 'manual'
  return `${run.id}  ${run.state.padEnd(9)}  ${why}  started ${when(run.started_at ?? run.created_at)}${run.error ? `  (${run.error})` : ''}`
}

function runText(run: any): string {
  const steps = (run.steps ?? []).map((s: any) => [s.id, s.type, s.state, s.task_id ?? '-', oneLine(s.error ?? s.output ?? '')])
  return [
    `run ${run.id} of ${run.workflow_id}: ${run.state}${run.error ? ` — ${run.error}` : ''}`,
    table(['STEP', 'TYPE', 'STATE', 'TASK', 'OUTPUT / ERROR'], steps),
  ].join('\n')
}

const oneLine = (text: string) => {
  const flat = text.replace(/\s+/g, ' ').trim()
  return flat.length > 60 ? `${flat.slice(0, 57)}...` : flat
}

function readDefinition(file: string): unknown {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (cause) {
    throw new UsageError(`cannot read ${file}: ${(cause as Error).message}`, { hint: 'orch workflows create nightly.yaml' })
  }
  try {
    // YAML is a superset of JSON: one parser reads both.
    return YAML.parse(text)
  } catch (cause) {
    throw new UsageError(`${file} is not valid YAML or JSON: ${(cause as Error).message}`, { code: 'E_WORKFLOW_FILE' })
  }
}

const create = defineOrchCommand({
  meta: { name: 'create', description: 'Create a workflow from a YAML or JSON file (steps, depends_on, optional cron schedule)' },
  args: {
    ...globalArgs,
    ...urlArg,
    file: { type: 'positional', required: true, valueHint: 'FILE', description: 'Workflow definition, .yaml or .json' },
    run: { type: 'boolean', description: 'Start a run at once' },
    replace: { type: 'boolean', description: 'A workflow of that name exists: replace its definition (its runs stay)' },
  },
  examples: [
    'orch workflows create nightly.yaml',
    'orch workflows create pipeline.json --run',
    'orch workflows create nightly.yaml --replace',
  ],
  async run({ args }) {
    const definition = readDefinition(args.file)
    let out: Awaited<ReturnType<ServeClient['createWorkflow']>>
    try {
      out = await serveClient(args).createWorkflow(definition, { run: args.run === true, replace: args.replace === true })
    } catch (error) {
      if (error instanceof OrchError && error.details?.field !== undefined) {
        throw new OrchError(`${args.file}: ${error.message}`, {
          code: error.code,
          exitCode: error.exitCode,
          hint: error.hint,
          details: error.details,
        })
      }
      throw error
    }
    if (args.json) return printJson(out)
    const schedule = out.next_run_at === null ? 'no schedule' : `next run ${when(out.next_run_at)}`
    printText(
      `${out.created ? 'created' : 'replaced'} workflow ${out.name} (${out.id}), ${schedule}${out.run_id ? `; started run ${out.run_id}` : ''}`,
    )
  },
})

const list = defineOrchCommand({
  meta: { name: 'list', description: 'Workflows with their schedule, next run and last run' },
  args: { ...globalArgs, ...urlArg },
  examples: ['orch workflows list', 'orch workflows list --json'],
  async run({ args }) {
    const { workflows } = await serveClient(args).workflows()
    if (args.json) return printJson({ workflows })
    if (workflows.length === 0) return printText('no workflows yet: orch workflows create FILE.yaml')
    const rows = workflows.map((w: any) => [
      w.name,
      w.id,
      w.schedule ? `${w.schedule}${w.enabled ? '' : ' (disabled)'}` : '-',
      when(w.next_run_at),
      w.last_run ? `${w.last_run.state} ${when(w.last_run.created_at)}` : '-',
    ])
    printText(table(['NAME', 'ID', 'SCHEDULE', 'NEXT RUN', 'LAST RUN'], rows))
  },
})

const get = defineOrchCommand({
  meta: { name: 'get', description: 'A workflow (definition and recent runs), or a run (run_... id: its steps, tasks, outputs)' },
  args: { ...globalArgs, ...urlArg, id: { ...idArg.id, description: 'Workflow id or name, or a run id' } },
  examples: ['orch workflows get nightly', 'orch workflows get run_0m3k2x1ab --json'],
  async run({ args }) {
    const api = serveClient(args)
    if (args.id.startsWith('run_')) {
      const run = await api.run(args.id)
      return args.json ? printJson(run) : printText(runText(run))
    }
    const w = await api.workflow(args.id)
    if (args.json) return printJson(w)
    const steps = w.definition.steps.map(
      (s: any) => `  ${s.id} (${s.type}, ${s.model})${s.depends_on?.length ? ` after ${s.depends_on.join(', ')}` : ''}`,
    )
    const schedule = w.schedule ? `${w.schedule} (${w.timezone})${w.enabled ? `, next run ${when(w.next_run_at)}` : ', disabled'}` : 'none'
    const lines = [`workflow ${w.name} (${w.id})`, `schedule: ${schedule}`, 'steps:', ...steps, 'recent runs:']
    lines.push(...(w.runs.length ? w.runs.map((r: any) => `  ${runLine(r)}`) : ['  none']))
    printText(lines.join('\n'))
  },
})

const run = defineOrchCommand({
  meta: { name: 'run', description: 'Start a run of a workflow now; --wait follows it to the end (exit 1 if it fails)' },
  args: {
    ...globalArgs,
    ...urlArg,
    ...idArg,
    wait: { type: 'boolean', description: 'Wait until the run finishes and show its steps' },
    timeout: { type: 'string', valueHint: 'SECONDS', description: 'Longest --wait, in seconds (default 600)' },
  },
  examples: ['orch workflows run nightly', 'orch workflows run nightly --wait', 'orch workflows run wf_0m3k2x1ab --wait --json'],
  async run({ args }) {
    const api = serveClient(args)
    const started = await api.triggerWorkflow(args.id)
    if (!args.wait)
      return args.json ? printJson(started) : printText(`started run ${started.run_id} (orch workflows get ${started.run_id})`)
    const seconds = args.timeout === undefined ? 600 : Number(args.timeout)
    if (!(seconds > 0)) throw new UsageError(`--timeout: expected a positive number of seconds, got "${args.timeout}"`)
    const finished = await api.waitRun(started.run_id, seconds * 1000)
    if (args.json) printJson(finished)
    else printText(runText(finished))
    if (finished.state === 'running' || finished.state === 'queued') {
      throw new OrchError(`run ${started.run_id} is still ${finished.state} after ${seconds} s`, {
        code: 'E_TIMEOUT',
        hint: `orch workflows get ${started.run_id}`,
      })
    }
    return finished.state === 'done' ? ExitCode.ok : ExitCode.failure
  },
})

const runs = defineOrchCommand({
  meta: { name: 'runs', description: 'Recent runs of a workflow, newest first' },
  args: { ...globalArgs, ...urlArg, ...idArg, limit: { type: 'string', valueHint: 'N', description: 'How many (default 50)' } },
  examples: ['orch workflows runs nightly', 'orch workflows runs nightly --limit 5 --json'],
  async run({ args }) {
    const limit = args.limit === undefined ? undefined : Number(args.limit)
    if (limit !== undefined && !(Number.isInteger(limit) && limit > 0))
      throw new UsageError(`--limit: expected a positive integer, got "${args.limit}"`)
    const out = await serveClient(args).workflowRuns(args.id, limit)
    if (args.json) return printJson(out)
    printText(out.runs.length ? out.runs.map(runLine).join('\n') : 'no runs yet')
  },
})

const cancel = defineOrchCommand({
  meta: { name: 'cancel', description: 'Cancel a run: its queued and running steps are cancelled' },
  args: { ...globalArgs, ...urlArg, run_id: { type: 'positional', required: true, valueHint: 'RUN_ID', description: 'Run id' } },
  examples: ['orch workflows cancel run_0m3k2x1ab'],
  async run({ args }) {
    const out = await serveClient(args).cancelRun(args.run_id)
    if (args.json) return printJson(out)
    printText(out.cancelled ? `cancelled run ${out.id}` : `run ${out.id} had already finished (${out.state})`)
  },
})

function toggle(enabled: boolean) {
  const verb = enabled ? 'enable' : 'disable'
  return defineOrchCommand({
    meta: {
      name: verb,
      description: enabled
        ? 'Switch a workflow’s schedule on (next run from now)'
        : 'Switch a workflow’s schedule off (it can still be run by hand)',
    },
    args: { ...globalArgs, ...urlArg, ...idArg },
    examples: [`orch workflows ${verb} nightly`],
    async run({ args }) {
      const out = await serveClient(args).setWorkflowEnabled(args.id, enabled)
      if (args.json) return printJson(out)
      printText(
        `${verb}d workflow ${out.name}${out.schedule ? (enabled ? `, next run ${when(out.next_run_at)}` : ', schedule off') : ' (it has no schedule)'}`,
      )
    },
  })
}

const remove = defineOrchCommand({
  meta: { name: 'delete', description: 'Delete a workflow: its schedule stops, runs in flight are cancelled, its run history goes' },
  args: { ...globalArgs, ...urlArg, ...idArg },
  examples: ['orch workflows delete nightly'],
  async run({ args }) {
    const out = await serveClient(args).deleteWorkflow(args.id)
    if (args.json) return printJson(out)
    printText(`deleted workflow ${out.id}${out.cancelled_runs ? ` (cancelled ${out.cancelled_runs} run(s) in flight)` : ''}`)
  },
})

export default defineOrchCommand({
  meta: { name: 'workflows', description: 'Create, run and schedule workflows (DAGs of tasks, cron) on a running orch serve' },
  subCommands: { create, list, get, run, runs, cancel, enable: toggle(true), disable: toggle(false), delete: remove },
  examples: [
    'orch workflows create nightly.yaml',
    'orch workflows list',
    'orch workflows run nightly --wait',
    'orch workflows runs nightly',
  ],
})
