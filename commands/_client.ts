/** The CLI side of talking to a running `orch serve`: `--url`, and a client from the config. */

import { ServeClient, type ServeClientOptions, serverUrl } from '../src/client.ts'
import { ExitCode, OrchError } from '../src/errors.ts'
import type { GlobalArgValues } from './_args.ts'
import { loadConfig } from './_config.ts'

export type { ServeClient, ServerEvent } from '../src/client.ts'

export const urlArg = {
  url: {
    type: 'string',
    valueHint: 'URL',
    description: 'orch serve to talk to (default http://<server.host>:<server.port> from the config)',
  },
} as const

/** `--url`, else the configured listen address; the token from the config. */
export function serveClient(args: GlobalArgValues & { url?: string }, options: ServeClientOptions = {}): ServeClient {
  const { server } = loadConfig(args).config
  if (args.url !== undefined && !/^https?:\/\/./.test(args.url)) {
    throw new OrchError(`--url must be an http(s) URL, got "${args.url}"`, { code: 'E_USAGE', exitCode: ExitCode.usage })
  }
  return new ServeClient(args.url ?? serverUrl(server), server.token, options)
}
