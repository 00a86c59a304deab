import { describe, expect, it } from "vitest";
import * as keys from "../packages/queue/src/keys";

// The whole Redis layout of a deployment whose QUEUE_PREFIX is "ci". Changing a line here changes what is
// stored in Redis: running API and worker processes of the previous version would no longer find each other.
const layout: Record<keyof typeof keys, string> = {
  executionChannel: keys.executionChannel("ci", "E"),
  executionLogKey: keys.executionLogKey("ci", "E"),
  executionChangedChannel: keys.executionChangedChannel("ci"),
  cancelChannel: keys.cancelChannel("ci"),
  cancelKey: keys.cancelKey("ci", "E"),
  kernelMappingKey: keys.kernelMappingKey("ci", "M"),
  kernelIdleIndex: keys.kernelIdleIndex("ci"),
  kernelEvictedKey: keys.kernelEvictedKey("ci", "M"),
  messageLockKey: keys.messageLockKey("ci", "M"),
  kernelResetKey: keys.kernelResetKey("ci", "M"),
  kernelRetireKey: keys.kernelRetireKey("ci"),
  memoryReliefLockKey: keys.memoryReliefLockKey("ci"),
  liveKernelsKey: keys.liveKernelsKey("ci"),
  poolOwnersKey: keys.poolOwnersKey("ci"),
  workerAliveKey: keys.workerAliveKey("ci", "W"),
  workerAliveIndex: keys.workerAliveIndex("ci"),
  workerMetricsKey: keys.workerMetricsKey("ci", "W"),
  workerMetricsIndex: keys.workerMetricsIndex("ci"),
  reconcilerLockKey: keys.reconcilerLockKey("ci"),
  cellAliveKey: keys.cellAliveKey("ci", "C"),
  cellAliveIndex: keys.cellAliveIndex("ci"),
  cellsKnownKey: keys.cellsKnownKey("ci"),
  cellRecoveryLockKey: keys.cellRecoveryLockKey("ci"),
  messageCellKey: keys.messageCellKey("ci", "M"),
  cellKeyPrefix: keys.cellKeyPrefix("ci", "C"),
  jupyterSessionKey: keys.jupyterSessionKey("ci", "D"),
  jupyterKernelKey: keys.jupyterKernelKey("ci", "K"),
  jupyterUserKernelsKey: keys.jupyterUserKernelsKey("ci", "U"),
  librechatRateKeyPrefix: keys.librechatRateKeyPrefix("ci"),
};

describe("the Redis key layout (packages/queue/src/keys.ts)", () => {
  it("is this, key by key (E execution id, M message key, W worker id, C cell id, D session digest, K kernel id, U user id)", () => {
    expect(layout).toEqual({
      executionChannel: "ci:execution:E",
      executionLogKey: "ci:execution-log:E",
      executionChangedChannel: "ci:execution-changed",
      cancelChannel: "ci:cancel",
      cancelKey: "ci:cancel-requested:E",
      kernelMappingKey: "ci:kernel:msg:M",
      kernelIdleIndex: "ci:kernel:idle",
      kernelEvictedKey: "ci:kernel:evicted:M",
      messageLockKey: "ci:kernel:lock:M",
      kernelResetKey: "ci:kernel:reset:M",
      kernelRetireKey: "ci:kernel:retire",
      memoryReliefLockKey: "ci:kernel:memory-relief",
      liveKernelsKey: "ci:kernel:live",
      poolOwnersKey: "ci:kernel:pool-owners",
      workerAliveKey: "ci:worker:alive:W",
      workerAliveIndex: "ci:workers:alive",
      workerMetricsKey: "ci:metrics:worker:W",
      workerMetricsIndex: "ci:metrics:workers",
      reconcilerLockKey: "ci:reconciler-lock",
      cellAliveKey: "ci:cell-alive:C",
      cellAliveIndex: "ci:cells:alive",
      cellsKnownKey: "ci:cells:known",
      cellRecoveryLockKey: "ci:cells:recovery-lock",
      messageCellKey: "ci:message-cell:M",
      cellKeyPrefix: "ci:cell:C",
      jupyterSessionKey: "ci:jupyter:session:D",
      jupyterKernelKey: "ci:jupyter:kernel:K",
      jupyterUserKernelsKey: "ci:jupyter:user:U",
      librechatRateKeyPrefix: "ci:librechat:rate",
    });
  });

  it("lists every builder the module exports", () => {
    expect(Object.keys(keys).sort()).toEqual(Object.keys(layout).sort());
  });

  it("gives no two builders the same key, so no two records can overwrite each other", () => {
    const values = Object.values(layout);
    expect(new Set(values).size).toBe(values.length);
  });

  it("keeps every key under the prefix, clear of BullMQ's `<prefix>:<queue>:` keys", () => {
    for (const key of Object.values(layout)) {
      expect(key.startsWith("ci:")).toBe(true);
      expect(key.startsWith("ci:executions:") || key.startsWith("ci:maintenance:")).toBe(false);
    }
  });
});
