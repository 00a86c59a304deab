export {
  jobCatalog,
  queueNames,
  parseJobPayload,
  enqueueJob,
  InvalidJobPayloadError,
  WrongQueueError,
} from "./catalog";
export type { JobName, JobPayload, QueueName } from "./catalog";
export * from "./keys";
export { LIVE_KERNEL_START_PREFIX, executionEventBodySchema, compareStreamIds, parseEventBody } from "./events";
export type { ExecutionEvent, ExecutionEventBody } from "./events";
export {
  enqueueExecution,
  finishAndAnnounce,
  isCancelRequested,
  onCancelRequests,
  requestCancel,
} from "./execution-state";
export type { ExecutionStateDeps, FinishData, TerminalStatus } from "./execution-state";
export { createRedis } from "./redis";
export type { Redis } from "./redis";
export { createEventPublisher } from "./publisher";
export type { EventPublisher } from "./publisher";
export { createEventSubscriber } from "./subscriber";
export type { EventSubscriber } from "./subscriber";
export { gatewaySeenSchema, readHeartbeats, removeHeartbeat, workerBeatSchema, writeHeartbeat } from "./heartbeats";
export type { GatewaySeen, WorkerBeat } from "./heartbeats";
export { readLiveEntries } from "./live-index";
export { clearKernelReset, markKernelReset, markKernelRetired, retireAgain, takeRetiredKernels } from "./kernel-marks";
export {
  executionFailureSchema,
  executionMetricsSchema,
  executionResultSchema,
  kernelErrorSchema,
  parseExecutionRecord,
  storedOutputSchema,
  StoredRecordError,
} from "./execution-record";
export type {
  ExecutionFailure,
  ExecutionMetrics,
  ExecutionRecord,
  ExecutionResult,
  StoredKernelError,
  StoredOutput,
} from "./execution-record";
export {
  CELL_ID,
  ExecutionRouter,
  cellBeatSchema,
  cellQueueName,
  forgetCell,
  holdMessage,
  knownCells,
  pickCell,
  readCellBeats,
  readMessageCell,
  heldByOtherCell,
  removeCellBeat,
  writeCellBeat,
} from "./cells";
export type { CellBeat, ExecutionRouterOptions } from "./cells";
