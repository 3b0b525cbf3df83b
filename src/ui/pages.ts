/** Every page of the dashboard, in navigation order. A new page is a module exporting a Page, listed here. */
import { batchPage } from './batch.ts'
import { logsPage } from './logs.ts'
import { modelsPage } from './models.ts'
import { overviewPage } from './overview.ts'
import { poolsPage } from './pools.ts'
import type { Page } from './router.ts'
import { taskPage, tasksPage } from './tasks.ts'
import { runPage, workflowPage, workflowsPage } from './workflows.ts'

export const PAGES: readonly Page[] = [
  overviewPage,
  tasksPage,
  taskPage,
  workflowsPage,
  workflowPage,
  runPage,
  modelsPage,
  batchPage,
  poolsPage,
  logsPage,
]

export const HOME = '#/overview'
