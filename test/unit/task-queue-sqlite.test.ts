/** The TaskQueue contract against the sqlite queue: each queue in its own state.db, a sibling on its own connection. */
import { openStore, type Store } from '../../src/store/db.ts'
import { SqliteTaskQueue } from '../../src/tasks/sqlite.ts'
import { taskQueueContract } from '../contract/task-queue.ts'
import { tempDir } from '../helpers/cli.ts'

taskQueueContract('sqlite', (options) => {
  const dir = tempDir('orch-task-queue-')
  const stores: Store[] = []
  const queues: SqliteTaskQueue[] = []
  const open = () => {
    // synchronous=NORMAL: the contract is about behaviour, not fsync; it keeps thousands of commits quick.
    const store = openStore(dir.path, { synchronous: 'NORMAL' })
    stores.push(store)
    const queue = new SqliteTaskQueue(store, options)
    queues.push(queue)
    return queue
  }
  const queue = open()
  return {
    queue,
    sibling: open,
    commits: () => queue.stats.commits,
    async dispose() {
      for (const q of queues) await q.close()
      for (const store of stores) store.close()
      dir.cleanup()
    },
  }
})
