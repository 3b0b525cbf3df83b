/** Every route group of `orch serve`, in match order. */
import type { AppDeps, Route } from '../http.ts'
import { adminRoutes } from './admin.ts'
import { batchRoutes } from './batch.ts'
import { eventRoutes } from './events.ts'
import { logRoutes } from './logs.ts'
import { metricsRoutes } from './metrics.ts'
import { ollamaRoutes } from './ollama.ts'
import { openaiRoutes } from './openai.ts'
import { poolRoutes } from './pools.ts'
import { scaleRoutes } from './scale.ts'
import { taskRoutes } from './tasks.ts'
import { uiRoutes } from './ui.ts'
import { workflowRoutes } from './workflows.ts'

export function defaultRoutes(deps: AppDeps): Route[] {
  return [
    ...adminRoutes(),
    ...metricsRoutes(),
    ...taskRoutes(deps),
    ...eventRoutes(),
    ...workflowRoutes(),
    ...scaleRoutes(),
    ...poolRoutes(),
    ...logRoutes(),
    ...uiRoutes(),
    ...batchRoutes(),
    ...ollamaRoutes(deps),
    ...openaiRoutes(deps),
  ]
}
