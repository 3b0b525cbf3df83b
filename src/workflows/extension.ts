/**
 * The workflows service as an `orch serve` extension: started after the task runner, it continues runs
 * left in flight and arms the schedules; routes reach it as `deps.services.workflows`.
 */
import type { Extension } from '../server/extensions.ts'
import type { AppDeps } from '../server/http.ts'
import { WorkflowService } from './service.ts'
import { WorkflowStore } from './store.ts'

export const workflowsExtension: Extension = {
  name: 'workflows',
  start(deps) {
    const service = new WorkflowService({ store: new WorkflowStore(deps.store), tasks: deps.tasks, bus: deps.bus })
    deps.services.workflows = service
    service.start()
    return {
      async stop() {
        await service.stop()
        if (deps.services.workflows === service) delete deps.services.workflows
      },
    }
  },
}

/** The workflows service of a running server; routes call this. */
export function workflowService(deps: AppDeps): WorkflowService {
  const service = deps.services.workflows
  if (!(service instanceof WorkflowService)) throw new Error('the workflows service is not running')
  return service
}
