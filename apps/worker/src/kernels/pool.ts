import type { KernelGateway, KernelSession } from "@codeinterp/kernel";
import type { Logger } from "@codeinterp/logger";
import { normalizeError } from "@codeinterp/logger";

/**
 * Pre-started kernels that have never run anyone's code, so a message's first execution does not wait
 * for a kernel start (~0.6-1 s). Refilled one kernel at a time in the background to avoid start storms.
 */
export class KernelPool {
  private readonly ready: KernelSession[] = [];
  private filling = false;
  private closed = false;
  private failures = 0;

  constructor(
    private readonly gateway: KernelGateway,
    private readonly size: number,
    private readonly log: Logger,
    /** Where idle pool kernels sit: a folder of their own, not any workspace. */
    private readonly path: string,
    private readonly onChange: (ids: string[]) => void = () => undefined,
  ) {}

  get available(): number {
    return this.ready.length;
  }

  ids(): string[] {
    return this.ready.map((s) => s.id);
  }

  /** A never-used kernel, or null when the pool is empty (the caller starts one itself). */
  take(): KernelSession | null {
    let session: KernelSession | undefined;
    while ((session = this.ready.shift())) {
      if (!session.isDead) break;
    }
    this.onChange(this.ids());
    this.refill();
    return session ?? null;
  }

  refill(): void {
    if (this.filling || this.closed || this.ready.length >= this.size) return;
    this.filling = true;
    void (async () => {
      try {
        while (!this.closed && this.ready.length < this.size) {
          const session = await this.gateway.startKernel({ path: this.path });
          if (this.closed) {
            await session.shutdown().catch(() => undefined);
            break;
          }
          this.ready.push(session);
          this.failures = 0;
          this.onChange(this.ids());
        }
      } catch (err) {
        this.failures++;
        this.log.warn({ err: normalizeError(err), failures: this.failures }, "kernel pool refill failed");
        // Back off so a gateway outage does not turn into a tight loop of failed starts.
        const delay = Math.min(1000 * 2 ** this.failures, 30_000);
        setTimeout(() => this.refill(), delay).unref();
      } finally {
        this.filling = false;
      }
    })();
  }

  async close(): Promise<void> {
    this.closed = true;
    const sessions = this.ready.splice(0);
    this.onChange([]);
    await Promise.all(sessions.map((s) => s.shutdown().catch(() => undefined)));
  }
}
