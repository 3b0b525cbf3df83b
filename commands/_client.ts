/** The CLI side of talking to a running `orch serve`: `--url`, and the one place a client is made (the token from the config). */

import { ServeClient, serverUrl } from '../src/client/client.ts'
import type { OrchConfig } from '../src/config/schema.ts'
import { UsageError } from '../src/core/errors.ts'
import type { GlobalArgValues } from './_args.ts'
import { loadConfig } from './_config.ts'

export type { ServeClient, ServerEvent, TaskWait } from '../src/client/client.ts'

export const urlArg = {
  url: {
    type: 'string',
    valueHint: 'URL',
    description: 'orch serve to talk to (default http://<server.host>:<server.port> from the config)',
  },
} as const

/** A client of the orch serve at `url` (one recorded in the state directory, or a checked --url), with the configured token. */
export function clientAt(url: string, server: Pick<OrchConfig['server'], 'token'>): ServeClient {
  return new ServeClient(url, server.token)
}

/** `--url` must be an http(s) URL: exit 2 otherwise, with `hint` when the command has an example. */
export function checkUrl(url: string, hint?: string): string {
  if (!/^https?:\/\/./.test(url)) throw new UsageError(`--url must be an http(s) URL, got "${url}"`, hint ? { hint } : {})
  return url
}

/** `--url`, else the configured listen address; the token from the config (loaded from the flags unless given). */
export function serveClient(
  args: GlobalArgValues & { url?: string },
  config: Pick<OrchConfig, 'server'> = loadConfig(args).config,
): ServeClient {
  const { server } = config
  return clientAt(args.url === undefined ? serverUrl(server) : checkUrl(args.url), server)
}
