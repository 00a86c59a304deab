/**
 * Every Redis key and pub/sub channel the system uses, all under the deployment's QUEUE_PREFIX, so that two
 * deployments (or two test files) can share one Redis. Nothing else spells a key: the API and the worker both
 * call these. BullMQ builds its own keys as `<prefix>:<queue name>:…` from the `prefix` option of each Queue
 * and Worker; test/redis-keys.unit.test.ts lists the whole layout.
 */

// Executions: live events, their replay log, cancel requests.
/** Pub/sub: an execution's events, each as "<stream id> <json>". */
export const executionChannel = (prefix: string, executionId: string) => `${prefix}:execution:${executionId}`;
/** A capped Redis stream of the same events, so a late subscriber can replay what it missed. */
export const executionLogKey = (prefix: string, executionId: string) => `${prefix}:execution-log:${executionId}`;
/** Pub/sub: API processes listen here for executions whose cached response changed (one of its files was deleted). */
export const executionChangedChannel = (prefix: string) => `${prefix}:execution-changed`;
/** Pub/sub: workers listen here for cancel requests of executions they may be running. */
export const cancelChannel = (prefix: string) => `${prefix}:cancel`;
/**
 * A lasting cancel request: pub/sub reaches only a worker already running the execution, so one that picks
 * it up later (a retried job, a cancel sent between two steps) checks this key.
 */
export const cancelKey = (prefix: string, executionId: string) => `${prefix}:cancel-requested:${executionId}`;

// Message kernels (worker), all under `<prefix>:kernel:`.
/** A message's kernel mapping (JSON { kernelId, lastUsed }), expiring after its idle TTL. */
export const kernelMappingKey = (prefix: string, messageKey: string) => `${prefix}:kernel:msg:${messageKey}`;
/** Sorted set: message keys scored by last use (the idle sweep and the ceiling's eviction walk it). */
export const kernelIdleIndex = (prefix: string) => `${prefix}:kernel:idle`;
/** "This message's kernel was evicted": its next execution is told its state was reset. */
export const kernelEvictedKey = (prefix: string, messageKey: string) => `${prefix}:kernel:evicted:${messageKey}`;
/**
 * The lock a message's executions (and the removal of its workspace) take turns on. redis-semaphore stores
 * it as `mutex:` followed by this name.
 */
export const messageLockKey = (prefix: string, messageKey: string) => `${prefix}:kernel:lock:${messageKey}`;
/**
 * "Replace this message's kernel": set by the API (a Jupyter-surface restart), consumed by the worker that
 * next acquires the message's kernel, which shuts the old one down and starts the execution on a fresh one.
 */
export const kernelResetKey = (prefix: string, messageKey: string) => `${prefix}:kernel:reset:${messageKey}`;
/** Set: message keys whose kernel is no longer wanted (a Jupyter-surface kernel deleted); the next idle sweep shuts it down. */
export const kernelRetireKey = (prefix: string) => `${prefix}:kernel:retire`;
/** Held by the one worker relieving memory pressure (evicting idle kernels over the high watermark). */
export const memoryReliefLockKey = (prefix: string) => `${prefix}:kernel:memory-relief`;
/**
 * The live-kernel leases under the ceiling (apps/worker/src/kernels/live-kernels.ts): a sorted set of kernel
 * ids (and LIVE_KERNEL_START_PREFIX places of kernels being started) scored by when each lease lapses.
 */
export const liveKernelsKey = (prefix: string) => `${prefix}:kernel:live`;
/** Hash: pre-started pool kernel id → the worker that owns it. */
export const poolOwnersKey = (prefix: string) => `${prefix}:kernel:pool-owners`;

// Workers: heartbeats, metrics snapshots, the reconciler's turn.
/** A worker's heartbeat (JSON WorkerBeat), expiring after three beats. */
export const workerAliveKey = (prefix: string, workerId: string) => `${prefix}:worker:alive:${workerId}`;
/** Sorted set: worker ids scored by when their heartbeat key expires. */
export const workerAliveIndex = (prefix: string) => `${prefix}:workers:alive`;
/** Where each worker publishes its metrics snapshot (apps/worker/src/metrics.ts) and the API reads them. */
export const workerMetricsKey = (prefix: string, workerId: string) => `${prefix}:metrics:worker:${workerId}`;
/** Sorted set: worker ids scored by when their metrics snapshot expires. */
export const workerMetricsIndex = (prefix: string) => `${prefix}:metrics:workers`;
/** One worker of the deployment reconciles at a time. */
export const reconcilerLockKey = (prefix: string) => `${prefix}:reconciler-lock`;

// Cells: one machine's worker(s) with its own Jupyter server and disk (packages/queue/src/cells.ts).
/** A cell's heartbeat (JSON CellBeat), expiring when the cell counts as gone. */
export const cellAliveKey = (prefix: string, cellId: string) => `${prefix}:cell-alive:${cellId}`;
/** Sorted set: cell ids scored by when their heartbeat key expires. */
export const cellAliveIndex = (prefix: string) => `${prefix}:cells:alive`;
/** Set: every cell that has a queue, until the queue of a cell that is gone has been handed on. */
export const cellsKnownKey = (prefix: string) => `${prefix}:cells:known`;
/** One cell at a time hands on the queues of cells that are gone. */
export const cellRecoveryLockKey = (prefix: string) => `${prefix}:cells:recovery-lock`;
/** The cell holding a message's kernel and workspace: its follow-ups are queued there. */
export const messageCellKey = (prefix: string, messageKey: string) => `${prefix}:message-cell:${messageKey}`;
/**
 * The prefix under which a cell keeps the state of its own Jupyter server's kernels (mappings, idle index,
 * live-kernel leases, pool owners, memory relief): kernel ids mean something only to the server that runs them.
 */
export const cellKeyPrefix = (prefix: string, cellId: string) => `${prefix}:cell:${cellId}`;

// The API's compatibility surfaces.
/** A Jupyter-surface login session, named by the digest of its cookie (never the cookie itself). */
export const jupyterSessionKey = (prefix: string, sessionDigestHex: string) =>
  `${prefix}:jupyter:session:${sessionDigestHex}`;
/** Hash: a Jupyter-surface kernel (its user, message and activity). */
export const jupyterKernelKey = (prefix: string, kernelId: string) => `${prefix}:jupyter:kernel:${kernelId}`;
/** Set: a user's Jupyter-surface kernel ids. */
export const jupyterUserKernelsKey = (prefix: string, userId: string) => `${prefix}:jupyter:user:${userId}`;
/** The LibreChat surface's rate limiter keeps its counters under this (rate-limiter-flexible adds `:<key>`). */
export const librechatRateKeyPrefix = (prefix: string) => `${prefix}:librechat:rate`;
