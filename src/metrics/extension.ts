/** Placeholder: replaced by the metrics service (Prometheus registry, performance_monitoring samples). */
import type { Extension } from '../server/extensions.ts'

export const metricsExtension: Extension = { name: 'metrics', start: () => ({ stop: () => {} }) }
