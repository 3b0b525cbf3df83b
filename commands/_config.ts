/** How a command gets its configuration, from the global flags. */
import { type ResolvedConfig, resolveConfig } from '../src/config/load.ts'
import { configureLogging, logger } from '../src/core/log.ts'
import type { GlobalArgValues } from './_args.ts'

/**
 * The one way a command gets its configuration: defaults < file < ORCH_* env < flags. `overrides` are the
 * command's own flags that set config keys, as dotted paths (`{ 'server.port': 8080 }`).
 */
export function loadConfig(args: GlobalArgValues, overrides: Record<string, unknown> = {}): ResolvedConfig {
  const flagOverrides: Record<string, unknown> = { ...overrides }
  if (args['log-level']) flagOverrides['logging.level'] = args['log-level']
  if (args.debug) flagOverrides['logging.level'] = 'debug'
  const resolved = resolveConfig({ configFile: args.config, envName: args.env, home: args.home, overrides: flagOverrides })
  configureLogging(resolved.config.logging)
  for (const warning of resolved.warnings) logger('config').warn(warning)
  return resolved
}
