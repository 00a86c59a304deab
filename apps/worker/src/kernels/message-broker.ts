import { kernelResetKey } from "@codeinterp/queue";
import type { KernelBroker, KernelLease, LeaseRequest, MessageTurn } from "./broker";
import { acquireLock, tryLock } from "./lock";
import { Lease } from "./lease";
import type { KernelPool } from "./pool";
import { createBrokerParts } from "./parts";
import type { BrokerParts, MessageBrokerOptions } from "./parts";
import { sweepKernels } from "./sweeps";
import { startTurn, turnOf } from "./turn";
import type { TurnState } from "./turn";
import { startUpkeep } from "./upkeep";

export type { MessageBrokerOptions } from "./parts";

/**
 * Each (user, message) has at most one kernel, recorded in Redis so any worker can attach to it (the kernel
 * lives on the gateway, not in a worker). Executions of one message take turns (see MessageTurn), and a turn
 * gets its kernel only through `lease`. Kernels idle longer than the TTL are shut down by whichever worker
 * sweeps first, and at the live-kernel ceiling the least recently used idle one makes room for a new one.
 */
export class MessageKernelBroker implements KernelBroker {
  private readonly parts: BrokerParts;
  private readonly stopUpkeep: () => void;

  constructor(opts: MessageBrokerOptions) {
    this.parts = createBrokerParts(opts);
    this.parts.pool.refill();
    this.stopUpkeep = startUpkeep(this.parts);
  }

  /** Pre-started kernels (metrics read how many are ready and what the pool refills to). */
  get pool(): KernelPool {
    return this.parts.pool;
  }

  /** Beats now (e.g. the gateway's state changed), not at the next interval. */
  heartbeat(): void {
    this.parts.owners.beat();
  }

  async tryTurn(messageKey: string): Promise<MessageTurn | null> {
    const { redis, log, lockKey, lockTtlMs } = this.parts;
    const locking = tryLock(redis, lockKey(messageKey), lockTtlMs, (err) =>
      log.warn({ messageKey, err: err.message }, "message lock lost"),
    );
    // Sent right behind the SET NX: if the lock is ours, this read happened under it.
    const early = this.readTurnState(messageKey).catch(() => undefined);
    const lock = await locking;
    return lock && startTurn(messageKey, lock, early, () => this.readTurnState(messageKey));
  }

  async takeTurn(messageKey: string, signal?: AbortSignal): Promise<MessageTurn> {
    const { redis, log, lockKey, lockTtlMs, lockWaitMs } = this.parts;
    const locking = acquireLock(redis, lockKey(messageKey), {
      ttlMs: lockTtlMs,
      waitMs: lockWaitMs,
      onLost: (err) => log.warn({ messageKey, err: err.message }, "message lock lost"),
      ...(signal ? { signal } : {}),
    });
    // undefined means "read it again under the lock" (startTurn).
    const early = this.readTurnState(messageKey).catch(() => undefined);
    return startTurn(messageKey, await locking, early, () => this.readTurnState(messageKey));
  }

  async makeRoom(messageTurn: MessageTurn): Promise<boolean> {
    const turn = turnOf(messageTurn);
    // Its own kernel (if that turns out gone, the lease finds room in place), or a pre-started one.
    if (turn.mapping || turn.place || this.parts.pool.available > 0) return true;
    turn.place = await this.parts.room.reserve(turn.messageKey);
    return turn.place !== null;
  }

  lease(turn: MessageTurn, req: LeaseRequest): Promise<KernelLease> {
    return Lease.take(this.parts, turnOf(turn), req);
  }

  async evict(messageTurn: MessageTurn, kernelId: string): Promise<void> {
    const turn = turnOf(messageTurn);
    const { mappings, kernels } = this.parts;
    const mapping = await mappings.read(turn.messageKey);
    if (mapping?.kernelId === kernelId) await kernels.forget(turn.messageKey, kernelId, true);
    else await kernels.shutDown(kernelId);
    if (turn.mapping?.kernelId === kernelId) turn.mapping = null;
  }

  /** Shuts down message kernels idle past the TTL, and pool kernels of workers that are gone; returns how many. */
  sweep(): Promise<number> {
    return sweepKernels(this.parts);
  }

  async close(): Promise<void> {
    const { pool, live, owners, sessions } = this.parts;
    this.stopUpkeep();
    const pooled = pool.ids();
    await pool.close();
    // Shut down with the pool: their places are free now, not when their leases lapse.
    await Promise.all(pooled.map((id) => live.drop(id).catch(() => undefined)));
    await owners.close();
    sessions.close();
  }

  /** A restart asked for through the API (the Jupyter surface) is read with the mapping at the turn's start. */
  private async readTurnState(messageKey: string): Promise<TurnState> {
    const { mapping, marked } = await this.parts.mappings.readWithMark(
      messageKey,
      kernelResetKey(this.parts.opts.prefix, messageKey),
    );
    return { mapping, resetAsked: marked };
  }
}
