/**
 * What `orch serve` says when it cannot listen: who holds the port, as far as orch can tell. A server
 * recorded in this state directory is orch's own (`orch stop` reaches it); one that answers `/health` as orch
 * does is an orch serve of another state directory; anything else is another program.
 */
import { type Health, ServeClient, serverUrl } from '../client/client.ts'
import { modeText, type ServeRecord } from './pidfile.ts'

export interface PortHolderFacts {
  port: number
  /** The live servers recorded in this state directory. */
  records: ServeRecord[]
  /** Whether what listens on the port answered `GET /health` like orch serve (its version). */
  orchVersion?: string
  /** The command that stops a server of this state directory (`orch stop`, with --home when one was given). */
  stopCommand: string
}

/** The hint for a port that is taken (pure). */
export function portTakenHint(facts: PortHolderFacts): string {
  const { port } = facts
  const another = `or choose another port: --port ${port === 65535 ? port - 1 : port + 1} (or server.port in orch.yaml; --port 0 picks a free one)`
  const recorded = facts.records.find((record) => recordPort(record) === port)
  if (recorded) {
    const { pid, mode } = recorded.info
    return `port ${port} is held by orch serve pid ${pid} (${modeText(mode)}) of this state directory: stop it with \`${facts.stopCommand}\`, ${another}`
  }
  if (facts.orchVersion !== undefined) {
    return (
      `port ${port} is held by another orch serve (version ${facts.orchVersion || 'unknown'}) with a different state directory: ` +
      `stop it with \`orch stop --home <its state directory>\` or Ctrl-C in its terminal, ${another}`
    )
  }
  return `another program holds port ${port}: find it with \`lsof -i :${port}\` (or \`ss -ltnp 'sport = :${port}'\`), ${another}`
}

function recordPort(record: ServeRecord): number | undefined {
  try {
    const url = new URL(record.info.url)
    return Number(url.port || (url.protocol === 'https:' ? 443 : 80))
  } catch {
    return undefined
  }
}

/** Ask what listens on host:port for `/health`; its version when it answers as orch serve does. */
export async function probeOrch(host: string, port: number, timeoutMs = 1000): Promise<string | undefined> {
  try {
    // No token: whatever holds the port may not be ours, and must not be sent our secret.
    const body: Partial<Health> | undefined = await new ServeClient(serverUrl({ host, port }), undefined).health({ timeoutMs })
    const looksLikeOrch = body?.status === 'ok' && typeof body.version === 'string' && typeof body.uptime_s === 'number'
    return looksLikeOrch ? body.version : undefined
  } catch {
    return undefined
  }
}
