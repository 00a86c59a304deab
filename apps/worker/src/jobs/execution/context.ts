import type { Db, ExecutionRow, FileRow } from "@codeinterp/db";
import type { Logger } from "@codeinterp/logger";
import type { EventPublisher, Redis } from "@codeinterp/queue";
import type { BlobStore } from "@codeinterp/workspace";
import type { CancelRegistry } from "../../cancellations";
import type { Cell } from "../../cells/cell";
import type { WorkerEnv } from "../../env";
import type { GatewayWatch } from "../../gateway-watch";
import type { KernelBroker, LeaseRequest, MessageTurn } from "../../kernels/broker";
import type { WorkspaceLayout } from "../../workspace-layout";

export interface RunExecutionDeps {
  env: WorkerEnv;
  db: Db;
  redis: Redis;
  blobs: BlobStore;
  broker: KernelBroker;
  layout: WorkspaceLayout;
  cancels: CancelRegistry;
  log: Logger;
  /** The gateway's liveness monitor: a gateway failure re-runs or fails the execution by its rules. */
  gatewayWatch?: GatewayWatch;
  /**
   * The gateway's per-kernel memory cap (its sandbox kernelspec says): what an execution that asks for no
   * memory runs under. Unset: unknown (unsandboxed kernels), and kernels are left as they are.
   */
  kernelMemoryBytes?: number;
  /** This machine as a cell (apps/worker/src/cells): which messages it holds, and which it took over. */
  cell?: Cell;
}

/** What every step of one execution shares (lease a kernel, prepare, run, record outcome). */
export interface ExecutionContext {
  deps: RunExecutionDeps;
  exec: ExecutionRow;
  /** The message's turn, taken and released by the job around the whole execution. */
  turn: MessageTurn;
  /** The message's kernel identity; its signal is the execution's cancel. */
  req: LeaseRequest & { signal: AbortSignal };
  pub: EventPublisher;
  log: Logger;
  startedAt: Date;
  /**
   * Still queued (warm: it is prepared on its message's kernel) and started with one statement; false once
   * claimed (preparing). See runExecution.
   */
  queued: boolean;
  /** The message's attachments (committed before this execution was queued), read with the execution. */
  attachments: FileRow[];
  /** Resolves once a cancel sent before this worker listened has been looked up (and honoured). */
  cancelMarkChecked: Promise<void>;
  /** What the result tells the user besides the code's output (attachments not placed, state reset). */
  notes: string[];
}
