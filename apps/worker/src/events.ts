import { EventEmitter } from "node:events";
import type { LeaseSource } from "./kernels/broker";
import type { EvictionReason } from "./kernels/room";

/**
 * What a worker tells whoever listens (its metrics, tests), as graphile-worker's WorkerEvents do: typed, emitted
 * where the thing happens, never needed for the work itself (a listener that throws is the listener's bug).
 */
export interface WorkerEventMap {
  /** A pre-started kernel is ready in this worker's pool. */
  "pool:refilled": [{ kernelId: string; ready: number; target: number }];
  /** Ready kernels above the pool's target were shut down once demand fell (`ready`: how many are left). */
  "pool:shrunk": [{ kernelId: string; ready: number; target: number }];
  /**
   * A turn got a kernel set up for its message (again, with `replaced`, when its lease had to swap it): how it
   * came, whether the message had another kernel before (its variables are gone), whether that one was
   * evicted to make room for others.
   */
  "kernel:leased": [{ messageKey: string; kernelId: string; how: LeaseSource; replaced: boolean; stateReset: boolean }];
  /** An idle kernel was shut down: for a new kernel ("ceiling") or over the high watermark ("memory"). */
  "kernel:evicted": [{ reason: EvictionReason }];
  /** A job gave its slot back for a moment: its message is busy, or no kernel can start now. */
  "turn:steppedAside": [{ executionId: string; reason: "message_busy" | "capacity" }];
  /** An execution that needs a new kernel found no room and waits for some in its slot. */
  "kernel:waitedForRoom": [{ messageKey: string }];
}

export type WorkerEvents = EventEmitter<WorkerEventMap>;

export function createWorkerEvents(): WorkerEvents {
  return new EventEmitter<WorkerEventMap>();
}
