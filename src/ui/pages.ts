/** Every page of the dashboard, in navigation order. A new page is a module exporting a Page, listed here. */
import { overviewPage } from './overview.ts'
import type { Page } from './router.ts'
import { taskPage, tasksPage } from './tasks.ts'

export const PAGES: readonly Page[] = [overviewPage, tasksPage, taskPage]

export const HOME = '#/overview'
