/**
 * The contract of a durable task queue (src/tasks/queue.ts): what every TaskQueue implementation must do,
 * checked through the interface alone. An implementation's test file calls
 * `taskQueueContract(name, factory)` with a factory that makes a fresh, empty queue from the options the
 * suite passes (its clock and `random` included) and can open a second handle on the same queue (another
 * connection, as another process would hold). Every call is awaited, so an implementation may answer any
 * method with a promise.
 */
import { describe } from 'bun:test'
import { claimCases } from './task-queue-claim.ts'
import { contractHarness, type TaskQueueFactory } from './task-queue-fixture.ts'
import { leaseCases } from './task-queue-leases.ts'
import { queryCases } from './task-queue-queries.ts'
import { simulationCase } from './task-queue-simulation.ts'
import { submitCases } from './task-queue-submit.ts'

export type { QueueUnderTest, TaskQueueFactory } from './task-queue-fixture.ts'

export function taskQueueContract(name: string, factory: TaskQueueFactory): void {
  const contract = contractHarness(factory)
  describe(`TaskQueue contract: ${name}`, () => {
    submitCases(contract)
    claimCases(contract)
    leaseCases(contract)
    queryCases(contract)
    simulationCase(contract)
  })
}
