/**
 * Services that live as long as `orch serve` and are not routes: workflow schedules, metrics sampling.
 * serve.ts starts each after the app's dependencies exist and stops them, in reverse, on shutdown.
 */
import type { RequestRecord } from './app.ts'
import type { AppDeps } from './http.ts'

export interface RunningExtension {
  stop(): Promise<void> | void
  /** Called once per HTTP request (metrics). */
  onRequest?(record: RequestRecord): void
}

export interface Extension {
  name: string
  start(deps: AppDeps): Promise<RunningExtension> | RunningExtension
}
