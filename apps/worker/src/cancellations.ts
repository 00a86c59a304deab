/** Executions this worker is running, so a cancel request from the API can reach the right one. */
export class CancelRegistry {
  private readonly running = new Map<string, AbortController>();

  register(executionId: string): AbortController {
    const ctl = new AbortController();
    this.running.set(executionId, ctl);
    return ctl;
  }

  unregister(executionId: string): void {
    this.running.delete(executionId);
  }

  cancel(executionId: string): boolean {
    const ctl = this.running.get(executionId);
    if (!ctl) return false;
    ctl.abort();
    return true;
  }

  /** Aborts everything this worker runs (shutdown deadline passed): kernels are interrupted, runs end. */
  abortAll(): number {
    for (const ctl of this.running.values()) ctl.abort();
    return this.running.size;
  }

  get size(): number {
    return this.running.size;
  }
}
