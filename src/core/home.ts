/**
 * The layout of the state directory, `$ORCH_HOME` (`--home` / `ORCH_HOME`, default `./.orch`): the one place
 * that names its files (docs/operations.md#state-directory). Every path is a pure function of the directory;
 * nothing here touches the disk.
 *
 *   $ORCH_HOME/
 *   ├── state.db                 sqlite (WAL: state.db-wal, state.db-shm beside it): tasks, workflows, batches,
 *   │                            pool worker records, kv
 *   ├── serve.pid                the record of the running orch serve (JSON), while it listens
 *   ├── serve-<pid>.pid          the record of a second server started with --allow-second
 *   ├── logs/
 *   │   ├── serve.log            the background orch serve (rotated: serve.log.1 … .3)
 *   │   └── <pool>/<worker>.log  each pool worker's stdout and stderr (rotated the same way)
 *   └── run/                     mode 0700
 *       ├── pool.sock            the pool supervisor's control socket (mode 0600)
 *       └── pool-watchdog.ts     the watchdog's source, written by the compiled binary to run it
 */
import { join } from 'node:path'

/** The state directory when neither `--home` nor `ORCH_HOME` names one, relative to the working directory. */
export const DEFAULT_HOME = '.orch'

/** The sqlite store's file name. */
export const STATE_DB = 'state.db'
export const stateDbPath = (home: string) => join(home, STATE_DB)

/** The primary serve record's file name. */
export const SERVE_RECORD = 'serve.pid'
/** A serve record's file name: the primary, or a second server's `serve-<pid>.pid`. */
export const SERVE_RECORD_NAME = /^serve(-\d+)?\.pid$/
export const serveRecordPath = (home: string) => join(home, SERVE_RECORD)
/** Where a second server (--allow-second) records itself. */
export const secondServeRecordPath = (home: string, pid: number) => join(home, `serve-${pid}.pid`)

export const logsDir = (home: string) => join(home, 'logs')
export const serveLogPath = (home: string) => join(logsDir(home), 'serve.log')
export const workerLogPath = (home: string, pool: string, worker: string) => join(logsDir(home), pool, `${worker}.log`)

export const runDir = (home: string) => join(home, 'run')
export const controlSocketPath = (home: string) => join(runDir(home), 'pool.sock')
export const watchdogScriptPath = (home: string) => join(runDir(home), 'pool-watchdog.ts')
/** orch's CLI as one script, which the compiled binary runs in bun mode for llamacpp workers (src/pool/self-launch.ts). */
export const cliScriptPath = (home: string) => join(runDir(home), 'orch-cli.js')

/** A file `orch doctor` writes and removes at once, to check the directory is writable. */
export const writeProbePath = (home: string, pid: number) => join(home, `.doctor-${pid}.tmp`)
