import type { KernelsMemoryReading } from "@codeinterp/kernel";

export interface MemoryAdmissionOptions {
  /** What the kernels use now (their parent cgroup) and the host's MemAvailable; null: cannot be read. */
  read: () => Promise<KernelsMemoryReading | null>;
  /** The kernels' parent cap: the host is protected by it whatever happens here. */
  budgetBytes: number;
  /** Above this, idle message kernels are shut down, least recently used first, down to `lowWatermarkBytes`. */
  highWatermarkBytes: number;
  lowWatermarkBytes: number;
  /** What a new kernel is expected to take once it has done a first analysis. */
  newKernelBytes: number;
  /** MemAvailable the host keeps: below it no kernel is admitted (the box has other tenants). */
  hostFloorBytes: number;
}

export interface MemoryState {
  usedBytes: number;
  hostAvailableBytes: number;
  budgetBytes: number;
  highWatermarkBytes: number;
  lowWatermarkBytes: number;
}

/**
 * Admission by memory in use, not by cap: a new kernel starts while the kernels' actual use (their parent
 * cgroup, less page cache they would give back) leaves room for it under the high watermark and the host
 * keeps its floor; above the high watermark idle kernels are evicted (see room.ts). A kernel's own hard cap
 * stays what it is; the count ceiling in live-kernels.ts stays as a bound on what one server manages.
 */
export class MemoryAdmission {
  private lastState: MemoryState | null = null;
  /** Kernels this worker admitted that are not started yet: they use nothing yet, and count at KERNEL_NEW_MB. */
  private starting = 0;

  constructor(private readonly opts: MemoryAdmissionOptions) {}

  /** The last reading, for metrics and /admin/kernels. */
  get state(): MemoryState | null {
    return this.lastState;
  }

  async sample(): Promise<MemoryState | null> {
    const r = await this.opts.read();
    if (!r) return null;
    this.lastState = {
      usedBytes: r.usedBytes,
      hostAvailableBytes: r.hostAvailableBytes,
      budgetBytes: this.opts.budgetBytes,
      highWatermarkBytes: this.opts.highWatermarkBytes,
      lowWatermarkBytes: this.opts.lowWatermarkBytes,
    };
    return this.lastState;
  }

  /**
   * Room for one more kernel in what is really free, counting the kernels this worker is still starting at
   * what they will take (a burst would otherwise be admitted against one reading): a release to call once the
   * kernel started or its start was given up, or null when there is no room. Unreadable memory admits (the
   * count ceiling holds).
   */
  async admit(): Promise<(() => void) | null> {
    const s = await this.sample();
    const need = this.opts.newKernelBytes * (this.starting + 1);
    if (s && (s.usedBytes + need > s.highWatermarkBytes || s.hostAvailableBytes - need < this.opts.hostFloorBytes))
      return null;
    this.starting++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.starting--;
    };
  }

  /**
   * Bytes to free to get back under the low watermark. Relief starts only over the high watermark (or under
   * the host's floor), and once started goes on down to the low one (`relieving`): stopping just under the
   * high watermark would leave no room for the next new kernel, and relief would start again at once.
   */
  async excessBytes(relieving = false): Promise<number> {
    const s = await this.sample();
    if (!s) return 0;
    const over = relieving ? s.usedBytes > s.lowWatermarkBytes : s.usedBytes > s.highWatermarkBytes;
    // The host short of its floor: kernels give back only down to the low watermark. What else uses the
    // host is not theirs to make up for by evicting every idle conversation (new kernels wait meanwhile).
    const hostShort = s.usedBytes > s.lowWatermarkBytes ? this.opts.hostFloorBytes - s.hostAvailableBytes : 0;
    if (!over && hostShort <= 0) return 0;
    return Math.max(s.usedBytes - s.lowWatermarkBytes, hostShort, 1);
  }
}
