/** Placeholder: replaced by the workflows service (DAG runs, cron schedules). */
import type { Extension } from '../server/extensions.ts'

export const workflowsExtension: Extension = { name: 'workflows', start: () => ({ stop: () => {} }) }
