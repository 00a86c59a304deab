import { KernelDiedError } from "@codeinterp/kernel";
import type { KernelSession } from "@codeinterp/kernel";
import type { Logger } from "@codeinterp/logger";
import { normalizeError } from "@codeinterp/logger";
import type { KernelLease, LeaseRequest, LeaseSource } from "./broker";
import { enterWorkspaceCode } from "./enter-workspace";
import type { Grant } from "./grant";
import { bindKernel, giveBack, grantKernel } from "./grant";
import { setKernelMemoryLimit, tooSmallError } from "./memory-limit";
import type { BrokerParts } from "./parts";
import type { Turn } from "./turn";

/** A kernel that cannot run the message's code although no user code ran in it yet (dead, or no workspace). */
export class KernelSetupError extends Error {
  override name = "KernelSetupError";
}

/**
 * The broker's lease (see KernelLease): it owns every hand-off of the turn's kernel, so a kernel that is
 * replaced (dead before any code ran, gone from the gateway, holding more than the memory limit) is given
 * back before the next is taken, and the turn never holds two.
 */
export class Lease implements KernelLease {
  private current!: Grant;
  private ended = true;
  private ms = 0;
  /** The message's kernel when the lease began: any other kernel means its variables are gone. */
  private readonly had: string | null;
  private reset = false;
  memoryLimit: KernelLease["memoryLimit"] = "unchanged";
  private readonly log: Logger;
  private readonly kernelDir: string;

  private constructor(
    private readonly parts: BrokerParts,
    private readonly turn: Turn,
    private readonly req: LeaseRequest,
  ) {
    this.had = turn.mapping?.kernelId ?? null;
    this.log = req.log ?? parts.log;
    this.kernelDir = parts.layout.kernelDir(req.workspaceDir);
  }

  static async take(parts: BrokerParts, turn: Turn, req: LeaseRequest): Promise<Lease> {
    const lease = new Lease(parts, turn, req);
    await lease.acquire();
    return lease;
  }

  get session(): KernelSession {
    return this.current.session;
  }
  get how(): LeaseSource {
    return this.current.how;
  }
  get replaced(): boolean {
    return this.had !== null && this.had !== this.current.session.id;
  }
  get stateReset(): boolean {
    return this.reset;
  }
  get acquireMs(): number {
    return this.ms;
  }

  async ready(): Promise<KernelSession> {
    await this.confirm();
    const bytes = this.req.memoryBytes;
    if (bytes === undefined) return this.session;
    for (let attempt = 1; ; attempt++) {
      const result = await setKernelMemoryLimit(this.session, bytes, this.log);
      if (result === "applied" || result === "unavailable") {
        this.memoryLimit = result;
        return this.session;
      }
      if (attempt >= 2) {
        // The execution fails either way; a kernel the retire could not shut down is swept as an orphan.
        await this.retire().catch(() => undefined);
        throw tooSmallError(result.holdsBytes, bytes);
      }
      // A kernel holding more than a lower limit (an earlier execution asked more and kept it in
      // variables) is replaced by a fresh one: lowering the limit under its use would kill it at once.
      this.log.info(
        { kernelId: this.session.id, usageMb: Math.ceil(result.holdsBytes / 1024 ** 2), memoryMb: bytes / 1024 ** 2 },
        "the kernel holds more than this execution's memory limit; taking a fresh one",
      );
      await this.end(true);
      await this.acquire();
      await this.confirm();
    }
  }

  exists(): Promise<boolean> {
    return this.parts.gateway.hasKernel(this.session.id);
  }

  release(): Promise<void> {
    return this.end(false);
  }

  retire(): Promise<void> {
    return this.end(true);
  }

  private async end(discard: boolean): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    await giveBack(this.parts, this.turn, this.current.session, discard);
  }

  /**
   * A kernel set up to run the message's code: its own (variables kept), or a new one set to start every
   * cell in the workspace. A new kernel that dies while starting (e.g. a port taken by another process), or
   * any kernel found dead before user code ran, is replaced once so the execution does not fail for it.
   */
  private async acquire(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      let grant: Grant;
      const t0 = Date.now();
      try {
        grant = await grantKernel(this.parts, this.turn, this.req);
        this.ms = Date.now() - t0;
      } catch (err) {
        if (attempt >= 2 || !(err instanceof KernelDiedError) || this.req.signal?.aborted) throw err;
        this.log.warn({ err: normalizeError(err).message }, "kernel died while starting; taking another");
        continue;
      }
      // The ceiling's note is owed once found (the mark is consumed), whichever kernel the lease ends with.
      this.reset ||= grant.stateReset;
      try {
        await this.setUp(grant);
      } catch (err) {
        // The original error is what the execution reports; a failed give-back leaves it to the idle sweep.
        await giveBack(this.parts, this.turn, grant.session, true).catch(() => undefined);
        if (attempt >= 2) throw err;
        this.log.warn({ err: normalizeError(err).message }, "kernel unusable before the code ran; taking another");
        continue;
      }
      this.current = grant;
      this.ended = false;
      this.parts.opts.events?.emit("kernel:leased", {
        messageKey: this.turn.messageKey,
        kernelId: grant.session.id,
        how: grant.how,
        replaced: this.replaced,
        stateReset: this.reset,
      });
      return;
    }
  }

  /** Once per kernel and message (a sandboxed pool kernel did it while it waited); then it is the message's. */
  private async setUp(grant: Grant): Promise<void> {
    const { session } = grant;
    if (grant.how === "attached") {
      if (session.isDead) throw new KernelSetupError("the message's kernel is dead");
      return;
    }
    if (grant.enteredDir !== this.kernelDir) {
      const cd = await session.execute(enterWorkspaceCode(this.kernelDir), { timeoutMs: 15_000 });
      if (cd.status !== "ok") throw new KernelSetupError(`could not enter the workspace (${cd.status})`);
    } else if (session.isDead) {
      // No setup cell to find it out: a kernel that died waiting is replaced here, before any code is sent.
      throw new KernelSetupError("the pool kernel is dead");
    }
    await bindKernel(this.parts, this.turn, session);
  }

  /**
   * A kernel whose websocket may look alive although it is gone (see Grant.stillThere) is looked up before
   * code is sent; one deleted a moment ago is replaced (its successor is not looked up again).
   */
  private async confirm(): Promise<void> {
    const stillThere = this.current.stillThere;
    if (!stillThere || (await stillThere)) return;
    this.log.info("the message's kernel is gone from the gateway; taking another");
    // The kernel is gone already; its mapping is replaced by the next one recorded.
    await this.end(true).catch(() => undefined);
    await this.acquire();
  }
}
