/**
 * GET /batch (docs/http-api.md#get-batch-the-batch-runners-folders): the batch runner's folders as
 * `orch batch status --json` shows them. The folders are `batch.inputs_root` and `batch.outputs_root` of the
 * config (relative ones from the serve process's working directory); nothing in the request names a path.
 */
import { batchStatus } from '../../batch/status.ts'
import { E_BATCH_INPUTS_ROOT, inputsRootProblem, resolveSettings } from '../../batch/tick.ts'
import { OrchError } from '../../core/errors.ts'
import { json, type Route } from '../http.ts'

export function batchRoutes(): Route[] {
  return [
    {
      method: 'GET',
      path: '/batch',
      handler: ({ deps }) => {
        const settings = resolveSettings(deps.config.batch, process.cwd())
        // The CLI exits 2 here; "nothing pending" would hide a typo in the path or a missing mount. The answer
        // names the configured path only: the server's own directories stay out of HTTP answers.
        if (inputsRootProblem(settings) !== undefined) {
          throw new OrchError(
            `batch.inputs_root ${JSON.stringify(deps.config.batch.inputs_root)} is not a folder on the server: create it, or set batch.inputs_root (ORCH_BATCH_INPUTS_ROOT)`,
            { code: E_BATCH_INPUTS_ROOT, status: 409, hint: 'orch batch status on the server says where it looked' },
          )
        }
        return json(batchStatus(settings, deps.store, Date.now()))
      },
    },
  ]
}
