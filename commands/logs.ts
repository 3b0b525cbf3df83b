/** `orch logs`: the tail of a service's log under $ORCH_HOME/logs, and with --follow what is appended to it. */
import { SERVE_SERVICE } from '../src/daemon/logfile.ts'
import { defineOrchCommand, globalArgs } from './_args.ts'
import { loadConfig } from './_config.ts'
import { DEFAULT_TAIL, showLog } from './_logs.ts'

export default defineOrchCommand({
  meta: { name: 'logs', description: 'Show (and follow) the logs of orch serve and its pool workers' },
  args: {
    ...globalArgs,
    follow: { type: 'boolean', alias: 'f', description: 'Keep printing lines as they are appended, until Ctrl-C' },
    tail: { type: 'string', valueHint: 'N', description: `Lines to show from the end, or "all" (default ${DEFAULT_TAIL})` },
    service: {
      type: 'string',
      valueHint: 'NAME',
      description: 'Whose log: serve (default; the background orch serve) or POOL/WORKER (a pool worker)',
    },
  },
  examples: ['orch logs', 'orch logs -f --tail 20', 'orch logs --service gpu/worker-0 --tail all', 'orch logs --json | jq -r .lines[]'],
  async run({ args }) {
    const { home } = loadConfig(args)
    return showLog(home, args.service ?? SERVE_SERVICE, { tail: args.tail, follow: args.follow, json: args.json })
  },
})
