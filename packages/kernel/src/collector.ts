import { stripAnsi } from "./ansi";
import { outputBytes, selectBundle } from "./outputs";
import { StreamCap } from "./stream-cap";
import type { KernelError, KernelEvent, RichOutput, Truncation } from "./types";

export type CollectorLimits = { maxStreamBytes: number; maxOutputs: number; maxOutputBytes: number };

export const DEFAULT_LIMITS: CollectorLimits = {
  maxStreamBytes: 1024 * 1024,
  maxOutputs: 50,
  maxOutputBytes: 20 * 1024 * 1024,
};

/** The parts of a Jupyter IOPub message the collector reads; kept structural so tests need no kernel. */
export type IOPubMessage = { header: { msg_type: string }; content: unknown };

type Content = Record<string, unknown>;

export function toKernelError(content: Content): KernelError {
  const tb = Array.isArray(content.traceback) ? content.traceback : [];
  return {
    ename: stripAnsi(String(content.ename ?? "Error")),
    evalue: stripAnsi(String(content.evalue ?? "")),
    traceback: tb.map((line) => stripAnsi(String(line))),
  };
}

/** Turns one execution's IOPub messages into capped stdout/stderr/outputs, streaming kept parts to onEvent. */
export class OutputCollector {
  private readonly stdout: StreamCap;
  private readonly stderr: StreamCap;
  private outputs: RichOutput[] = [];
  private outputBytesUsed = 0;
  private outputsDropped = 0;
  private seenImages = new Set<string>();
  private clearOnNextOutput = false;
  error: KernelError | null = null;
  executionCount: number | null = null;

  constructor(
    private readonly limits: CollectorLimits,
    private readonly onEvent?: (e: KernelEvent) => void,
  ) {
    this.stdout = new StreamCap(limits.maxStreamBytes);
    this.stderr = new StreamCap(limits.maxStreamBytes);
  }

  emit(e: KernelEvent): void {
    if (!this.onEvent) return;
    try {
      this.onEvent(e);
    } catch {
      // A failing listener must not break the run it is watching.
    }
  }

  handle(msg: IOPubMessage): void {
    const content = (msg.content ?? {}) as Content;
    switch (msg.header.msg_type) {
      case "stream": {
        this.applyPendingClear();
        const name = content.name === "stderr" ? "stderr" : "stdout";
        const kept = (name === "stderr" ? this.stderr : this.stdout).append(String(content.text ?? ""));
        if (kept) this.emit({ type: name, text: kept });
        break;
      }
      case "execute_result":
        if (typeof content.execution_count === "number") this.executionCount = content.execution_count;
        this.addBundle(content);
        break;
      case "display_data":
        this.addBundle(content);
        break;
      case "error":
        this.error = toKernelError(content);
        break;
      case "execute_input":
        if (typeof content.execution_count === "number") this.executionCount = content.execution_count;
        break;
      case "clear_output":
        if (content.wait) this.clearOnNextOutput = true;
        else this.clear();
        break;
      case "status":
        this.emit({ type: "status", state: String(content.execution_state ?? "unknown") });
        break;
      default:
        // update_display_data and comm traffic have no place in a one-shot result.
        break;
    }
  }

  private applyPendingClear(): void {
    if (this.clearOnNextOutput) {
      this.clearOnNextOutput = false;
      this.clear();
    }
  }

  private clear(): void {
    this.stdout.clear();
    this.stderr.clear();
    this.outputs = [];
    this.outputBytesUsed = 0;
    this.seenImages.clear();
  }

  private addBundle(content: Content): void {
    this.applyPendingClear();
    const data = (content.data ?? {}) as Content;
    const metadata = (content.metadata ?? {}) as Content;
    for (const out of selectBundle(data, metadata)) {
      if (out.mimeType.startsWith("image/")) {
        // A figure returned as the last expression arrives as execute_result and again as the
        // inline backend's display_data: keep identical images once.
        const key = `${out.mimeType}\0${out.data}`;
        if (this.seenImages.has(key)) continue;
        this.seenImages.add(key);
      }
      const size = outputBytes(out);
      if (this.outputs.length >= this.limits.maxOutputs || this.outputBytesUsed + size > this.limits.maxOutputBytes) {
        this.outputsDropped++;
        continue;
      }
      this.outputs.push(out);
      this.outputBytesUsed += size;
      this.emit({ type: "output", ...out });
    }
  }

  result(): { stdout: string; stderr: string; outputs: RichOutput[]; truncated: Truncation } {
    return {
      stdout: this.stdout.text(),
      stderr: this.stderr.text(),
      outputs: this.outputs,
      truncated: {
        stdoutBytesDropped: this.stdout.dropped,
        stderrBytesDropped: this.stderr.dropped,
        outputsDropped: this.outputsDropped,
      },
    };
  }
}
