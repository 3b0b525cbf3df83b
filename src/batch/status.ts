/**
 * What `orch batch status --json` and GET /batch show: the batch folders under inputs_root by state, their
 * `.lock` files (stale ones marked), and the processed batches with their result summaries. Read from the
 * configured folders and state.db only.
 */
import type { Store } from '../store/db.ts'
import { type BatchRecord, importProcessedJson, listProcessed } from './state.ts'
import { type BatchSettings, type LockInfo, listBatchFolders, processedJsonFile, scanLocks } from './tick.ts'

export interface ProcessedView extends Omit<BatchRecord, 'processed_at'> {
  /** UTC, ISO 8601. */
  processed_at: string
}

export interface BatchStatus {
  inputs_root: string
  pending: string[]
  locked: string[]
  locks: LockInfo[]
  stale_lock_seconds: number
  empty: string[]
  processed: ProcessedView[]
}

/** The status as of `now`; a `processed.json` beside the inputs is imported first (once per state.db). */
export function batchStatus(settings: BatchSettings, store: Store, now: number): BatchStatus {
  importProcessedJson(store, processedJsonFile(settings), now)
  const folders = listBatchFolders(settings, store)
  const names = (state: string) => folders.filter((f) => f.state === state).map((f) => f.name)
  return {
    inputs_root: settings.inputsRoot,
    pending: names('pending'),
    locked: names('locked'),
    locks: scanLocks(settings, now),
    stale_lock_seconds: settings.staleLockSeconds,
    empty: names('empty'),
    processed: listProcessed(store).map((r) => ({ ...r, processed_at: new Date(r.processed_at).toISOString() })),
  }
}
