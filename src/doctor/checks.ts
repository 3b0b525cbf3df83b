/**
 * The doctor's judgement, pure: facts gathered by run.ts come in, findings go out. Every error carries the
 * fix to apply; a warning does not fail `orch doctor`.
 */
import { formatAge } from '../core/age.ts'
import { type ConfigIssue, formatIssue } from '../core/errors.ts'
import { checkEngine, type EngineFacts } from './checks-engine.ts'
import { checkDisk, checkGpus, checkOpenFiles, checkRuntime, type GpuFacts } from './checks-machine.ts'
import { checkPrometheus, type PrometheusFacts } from './checks-prometheus.ts'
import { checkRedis, type RedisFacts } from './checks-redis.ts'
import { type Finding, fail, ok, warn } from './finding.ts'

export * from './checks-engine.ts'
export * from './checks-machine.ts'
export * from './checks-prometheus.ts'
export * from './checks-redis.ts'
export type { Finding, FindingStatus } from './finding.ts'

export interface ConfigFacts {
  /** Config files read (as shown to the user); empty means defaults only. */
  files: string[]
  issues: ConfigIssue[]
  /** Non-fatal notes from the resolver (unknown ORCH_* variables). */
  warnings: string[]
}

export function checkConfig(facts: ConfigFacts): Finding[] {
  const where = facts.files.length > 0 ? facts.files.join(' + ') : 'no config file (defaults)'
  const findings: Finding[] = facts.issues.map((issue) => {
    const place = issue.file ? `${issue.file}${issue.line ? ` line ${issue.line}` : ''}` : 'the configuration'
    const key = issue.path ? `\`${issue.path}\`` : 'the file'
    return fail(
      'config',
      `config ${issue.path || 'file'}`,
      formatIssue(issue),
      `correct ${key} in ${place}; \`orch config validate\` lists every problem`,
    )
  })
  for (const warning of facts.warnings) findings.push(warn('config', 'config environment', warning, 'unset or correct the variable'))
  if (facts.issues.length === 0) findings.unshift(ok('config', 'config', `valid: ${where}`))
  return findings
}

export interface HomeFacts {
  path: string
  /** Whether a file could be created in it (or in its nearest existing parent, when it does not exist yet). */
  writable: boolean
  exists: boolean
  error?: string
  /** PRAGMA integrity_check rows; undefined when there is no state.db yet. */
  integrity?: string[]
  /** Why state.db could not be opened. */
  dbError?: string
}

export function checkHome(facts: HomeFacts): Finding[] {
  const findings: Finding[] = []
  if (!facts.writable) {
    findings.push(
      fail(
        'state-dir',
        'state directory',
        `${facts.path} is not writable${facts.error ? `: ${facts.error}` : ''}`,
        `make it writable (\`chmod u+w ${facts.path}\`) or pick another with --home / ORCH_HOME`,
      ),
    )
  } else findings.push(ok('state-dir', 'state directory', `${facts.path} is writable${facts.exists ? '' : ' (created on first use)'}`))
  const db = `${facts.path}/state.db`
  const moveAside = `stop orch, move ${db} aside (\`mv ${db} ${db}.bad\`); orch creates a new one`
  if (facts.dbError !== undefined) findings.push(fail('state-db', 'state database', `cannot open ${db}: ${facts.dbError}`, moveAside))
  else if (facts.integrity === undefined) findings.push(ok('state-db', 'state database', 'no state.db yet (created on first use)'))
  else if (facts.integrity.length === 1 && facts.integrity[0] === 'ok')
    findings.push(ok('state-db', 'state database', 'integrity_check ok'))
  else {
    const first = facts.integrity.slice(0, 3).join('; ')
    findings.push(
      fail('state-db', 'state database', `integrity_check failed: ${first}`, `${moveAside}, or recover it with \`sqlite3 ${db} .recover\``),
    )
  }
  return findings
}

export interface PortFacts {
  /** `serve`, or `pool <name>`. */
  owner: string
  /** The config key that sets the port, for the fix. */
  key: string
  host: string
  port: number
  state: 'free' | 'busy'
  /** pid of a running orch serve (from $ORCH_HOME/serve.pid) that listens on this port. */
  orchPid?: number
  error?: string
}

export function checkPort(facts: PortFacts): Finding {
  const id = `port.${facts.owner.replace(/ /g, '.')}`
  const title = `port ${facts.owner}`
  const at = `${facts.host}:${facts.port}`
  if (facts.state === 'free') return ok(id, title, `${at} is free`)
  if (facts.orchPid !== undefined) return ok(id, title, `${at} is held by orch (pid ${facts.orchPid})`)
  const why = facts.error ? ` (${facts.error})` : ''
  if (facts.owner === 'serve') {
    return fail(
      id,
      title,
      `${at} is in use by another program${why}`,
      `stop the program on port ${facts.port} (\`lsof -i :${facts.port}\`), or set ${facts.key} (or \`orch serve --port\`) to a free port`,
    )
  }
  return warn(
    id,
    title,
    `${at} is in use${why}; workers will take the next free ports`,
    `set ${facts.key} to a free range to keep ports predictable`,
  )
}

export interface BackendFacts {
  name: string
  /** Index in `backends`, for the fix. */
  index: number
  type: 'ollama' | 'openai'
  url: string
  reachable: boolean
  error?: string
  /** The server answered 401 or 403: it wants a token orch did not send, or not that one. */
  unauthorized?: boolean
  /** `backends[i].api_key_env`, and whether that variable is set. */
  apiKeyEnv?: { name: string; set: boolean }
  /** Models the backend lists (`/api/tags`, `/v1/models`). */
  available: string[]
  /** Models the configuration says it serves. */
  wanted: string[]
}

const bare = (model: string) => model.replace(/:latest$/, '')

export function checkBackend(facts: BackendFacts): Finding[] {
  const id = `backend.${facts.name}`
  const title = `backend ${facts.name}`
  if (!facts.reachable && facts.unauthorized) {
    const key = facts.apiKeyEnv
    const fix =
      key === undefined
        ? `set backends[${facts.index}].api_key_env to the name of a variable holding its token, and export that variable`
        : key.set
          ? `the token in ${key.name} is refused: replace it with a valid one`
          : `export ${key.name}=<token> before starting orch (backends[${facts.index}].api_key_env names it)`
    return [fail(id, title, `${facts.url} refused orch: ${facts.error ?? 'unauthorized'}`, fix)]
  }
  if (!facts.reachable) {
    const start = facts.type === 'ollama' ? 'start Ollama (`ollama serve`)' : 'start the server'
    return [fail(id, title, `${facts.url} unreachable: ${facts.error ?? 'no answer'}`, `${start}, or correct backends[${facts.index}].url`)]
  }
  const have = new Set(facts.available.map(bare))
  const missing = facts.wanted.filter((m) => !have.has(bare(m)))
  const findings = [ok(id, title, `${facts.url} reachable, ${facts.available.length} model(s)`)]
  for (const model of missing) {
    const fix =
      facts.type === 'ollama' ? `\`ollama pull ${model}\` on that server (OLLAMA_HOST=${facts.url})` : `load ${model} on that server`
    findings.push(
      fail(
        `${id}.model`,
        `${title} model`,
        `${model} is configured but not served by ${facts.url}`,
        `${fix}, or remove it from backends[${facts.index}].models`,
      ),
    )
  }
  return findings
}

export interface ExecutableFacts {
  /** `ollama`, or the first word of a command pool. */
  program: string
  /** Pools that need it. */
  pools: string[]
  path?: string
  version?: string
  error?: string
}

export function checkExecutable(facts: ExecutableFacts): Finding {
  const id = `program.${facts.program}`
  const title = facts.program
  const users = `pool${facts.pools.length > 1 ? 's' : ''} ${facts.pools.join(', ')}`
  if (facts.path === undefined) {
    const fix =
      facts.program === 'ollama'
        ? 'install Ollama (https://ollama.com/download) and put `ollama` on PATH'
        : `install ${facts.program} or put it on PATH`
    return fail(id, title, `${facts.program} not found on PATH (needed by ${users})`, fix)
  }
  const version = facts.version ? `, ${facts.version}` : facts.error ? `, version unknown (${facts.error})` : ''
  return ok(id, title, `${facts.path}${version}`)
}

export interface BatchLockFacts {
  inputsRoot: string
  staleLockSeconds: number
  locks: { name: string; path: string; age_seconds: number; pid: number | null; stale: boolean }[]
  error?: string
}

/** Stale `.lock` files under batch.inputs_root: each blocks its batch until removed (docs/operations.md#batch-runner). */
export function checkBatchLocks(facts: BatchLockFacts): Finding[] {
  const title = 'batch locks'
  if (facts.error) return [warn('batch.locks', title, `cannot read ${facts.inputsRoot}: ${facts.error}`)]
  const stale = facts.locks.filter((l) => l.stale)
  if (stale.length === 0) {
    const held =
      facts.locks.length === 0 ? 'no batch is locked' : `${facts.locks.length} lock(s), none older than ${facts.staleLockSeconds} s`
    return [ok('batch.locks', title, `${facts.inputsRoot}: ${held}`)]
  }
  return stale.map((lock) =>
    warn(
      'batch.locks',
      title,
      `${lock.name}: .lock is ${formatAge(lock.age_seconds)} old (batch.stale_lock_seconds: ${facts.staleLockSeconds})` +
        `${lock.pid ? `, written by pid ${lock.pid}` : ''}; no tick will process this batch while it is there`,
      `if no orch batch tick is still running on it: rm ${lock.path}`,
    ),
  )
}

/** Everything run.ts gathered; a section left out was not applicable (or could not be gathered: config invalid). */
export interface DoctorFacts {
  bunVersion: string | undefined
  config: ConfigFacts
  home: HomeFacts
  disk: { path: string; freeBytes: number | undefined; error?: string }
  openFiles: number | undefined
  gpus: GpuFacts
  ports?: PortFacts[]
  backends?: BackendFacts[]
  programs?: ExecutableFacts[]
  redis?: RedisFacts
  /** Only with performance_monitoring.integrations.grafana_prometheus.enabled. */
  prometheus?: PrometheusFacts
  /** Only when a pool has `profile: llamacpp`. */
  engine?: EngineFacts
  /** Only when batch.inputs_root exists. */
  batchLocks?: BatchLockFacts
}

export interface DoctorReport {
  ok: boolean
  findings: Finding[]
}

export function planDoctor(facts: DoctorFacts): DoctorReport {
  const findings = [
    checkRuntime(facts.bunVersion),
    ...checkConfig(facts.config),
    ...checkHome(facts.home),
    checkDisk(facts.disk),
    checkOpenFiles(facts.openFiles),
    ...(facts.ports ?? []).map(checkPort),
    ...(facts.backends ?? []).flatMap(checkBackend),
    ...(facts.programs ?? []).map(checkExecutable),
    ...checkGpus(facts.gpus),
    ...(facts.engine ? checkEngine(facts.engine, facts.gpus) : []),
    ...(facts.redis ? checkRedis(facts.redis) : []),
    ...(facts.prometheus ? [checkPrometheus(facts.prometheus)] : []),
    ...(facts.batchLocks ? checkBatchLocks(facts.batchLocks) : []),
  ]
  return { ok: findings.every((f) => f.status !== 'error'), findings }
}
