export type KernelEvent =
  | { type: "stdout" | "stderr"; text: string }
  | { type: "output"; mimeType: string; data: string; metadata?: Record<string, unknown> }
  | { type: "status"; state: string };

export type ExecutionStatus = "ok" | "error" | "timeout" | "cancelled" | "died";

export type RichOutput = { mimeType: string; data: string; metadata?: Record<string, unknown> };

export type KernelError = { ename: string; evalue: string; traceback: string[] };

export type Truncation = {
  /** Bytes of stdout / stderr dropped after the cap (0 when nothing was dropped). */
  stdoutBytesDropped: number;
  stderrBytesDropped: number;
  /** Rich outputs dropped because of maxOutputs or maxOutputBytes. */
  outputsDropped: number;
};

export type ExecutionOutcome = {
  status: ExecutionStatus;
  stdout: string;
  stderr: string;
  outputs: RichOutput[];
  error: KernelError | null;
  executionCount: number | null;
  truncated: Truncation;
  /** The kernel was restarted (by us after a stuck interrupt, or by the server after a crash): its state is gone. */
  kernelRestarted: boolean;
  /**
   * The code ended (the kernel replied) but the kernel's end-of-output signal never came: a flood of output
   * can make the queue between kernel and server drop it, and output sent just before it may be lost too.
   */
  outputEndLost: boolean;
  /**
   * Set when the kernel died because its processes went over its memory cap (its host counted an
   * out-of-memory kill); null otherwise, or when the host cannot tell (see host.ts).
   */
  outOfMemory: { limitBytes: number | null } | null;
  durationMs: number;
};

export type ExecuteOptions = {
  /** Total wall-clock deadline for the run, from the call. */
  timeoutMs?: number;
  /** Aborting interrupts the run; the outcome is "cancelled". */
  signal?: AbortSignal;
  onEvent?: (e: KernelEvent) => void;
  /** Cap on stdout and on stderr, each (UTF-8 bytes). Default 1 MiB. */
  maxStreamBytes?: number;
  /** Default 50. */
  maxOutputs?: number;
  /** Cap on the summed size of rich outputs. Default 20 MiB. */
  maxOutputBytes?: number;
  /** After an interrupt, how long a still-busy kernel may take before it is restarted. Default 2000 ms. */
  interruptGraceMs?: number;
};
