/**
 * Workflows (docs/http-api.md#workflows-dags-of-tasks-on-demand-or-on-a-cron-schedule): DAGs of durable tasks, run on demand or on a cron schedule. Workflows are
 * addressed by id or by name. The work is done by the workflows service (src/workflows/), which
 * `orch serve` starts with the runner (`deps.workflows`).
 */
import * as v from 'valibot'
import { DefinitionEntries } from '../../workflows/schema.ts'
import type { PageQuery } from '../../workflows/service.ts'
import { json, pageLimit, type Route, type RouteContext, readJson } from '../http.ts'

const CreateSchema = v.strictObject({
  ...DefinitionEntries,
  /** Start a run at once. */
  run: v.optional(v.boolean()),
  /** A workflow of this name exists: replace its definition (its runs stay) instead of answering 409. */
  replace: v.optional(v.boolean()),
})

export function workflowRoutes(): Route[] {
  return [
    { method: 'POST', path: '/workflows', handler: create },
    { method: 'GET', path: '/workflows', handler: ({ deps, url }) => json(deps.workflows.list(pageQuery(url))) },
    { method: 'GET', path: '/workflows/:id', handler: ({ deps, params }) => json(deps.workflows.get(id(params))) },
    { method: 'DELETE', path: '/workflows/:id', handler: remove },
    { method: 'POST', path: '/workflows/:id/runs', handler: trigger },
    {
      method: 'POST',
      path: '/workflows/:id/enable',
      handler: ({ deps, params }) => json(deps.workflows.setEnabled(id(params), true)),
    },
    {
      method: 'POST',
      path: '/workflows/:id/disable',
      handler: ({ deps, params }) => json(deps.workflows.setEnabled(id(params), false)),
    },
    {
      method: 'GET',
      path: '/workflows/:id/runs',
      handler: ({ deps, params, url }) => json(deps.workflows.runs(id(params), pageQuery(url))),
    },
    { method: 'GET', path: '/runs/:run_id', handler: ({ deps, params }) => json(deps.workflows.run(params.run_id ?? '')) },
    { method: 'DELETE', path: '/runs/:run_id', handler: cancelRun },
  ]
}

async function create(ctx: RouteContext): Promise<Response> {
  const { run, replace, ...def } = await readJson(ctx, CreateSchema)
  const service = ctx.deps.workflows
  const { workflow, created } = service.create(def, { replace: replace === true })
  const started = run ? await service.trigger(workflow.id) : undefined
  const body = {
    id: workflow.id,
    name: workflow.name,
    created,
    next_run_at: workflow.next_run_at,
    ...(started ? { run_id: started.id } : {}),
  }
  return json(body, created ? 201 : 200, { location: `/workflows/${workflow.id}` })
}

async function trigger(ctx: RouteContext): Promise<Response> {
  const run = await ctx.deps.workflows.trigger(id(ctx.params))
  return json({ run_id: run.id, workflow_id: run.workflow_id, state: 'queued' }, 202, { location: `/runs/${run.id}` })
}

async function remove(ctx: RouteContext): Promise<Response> {
  const result = await ctx.deps.workflows.remove(id(ctx.params))
  return json({ ...result, deleted: true })
}

async function cancelRun(ctx: RouteContext): Promise<Response> {
  const service = ctx.deps.workflows
  const runId = ctx.params.run_id ?? ''
  const cancelled = await service.cancelRun(runId)
  return json({ ...service.run(runId), cancelled })
}

function id(params: Record<string, string>): string {
  return params.id ?? ''
}

/** `?limit=&cursor=` of a list, by the page rule GET /tasks follows too. */
function pageQuery(url: URL): PageQuery {
  const limit = pageLimit(url)
  const cursor = url.searchParams.get('cursor') || undefined
  return cursor === undefined ? { limit } : { limit, cursor }
}
