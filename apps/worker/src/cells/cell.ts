import { exists } from "../workspace-layout";
import type { Logger } from "@codeinterp/logger";
import { normalizeError } from "@codeinterp/logger";
import type { Redis } from "@codeinterp/queue";
import { cellKeyPrefix, cellQueueName, holdMessage, removeCellBeat, writeCellBeat } from "@codeinterp/queue";
import { removeWorkspaceDir } from "@codeinterp/workspace";
import type { MessageTurn } from "../kernels/broker";
import { handOnGoneCells } from "./hand-on";

export interface CellOptions {
  cellId: string;
  /** QUEUE_PREFIX */
  prefix: string;
  redis: Redis;
  log: Logger;
  /** How often it beats; it counts as gone `lostMs` after its last beat. */
  heartbeatMs: number;
  lostMs: number;
  /** How long a message stays with this cell after its last execution (its kernel's mapping lasts as long). */
  holdMs: number;
  /** New messages it can take now (free slots, at most its free kernel places). */
  room: () => Promise<number>;
}

/**
 * This machine as one cell of the deployment (packages/queue/src/cells.ts has the routing rule): it beats in
 * Redis with its free room, records which messages it holds, takes over messages whose cell is gone (their
 * kernel is lost: the workspace is rebuilt from object storage), hands on the queues of cells that are gone,
 * and drains. A beat is written only while the cell serves its queues: a cell that stops serving them stops
 * beating, and so counts as gone.
 */
export class Cell {
  readonly keyPrefix: string;
  readonly queueName: string;
  private draining = false;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  /** The beat under way: awaited before the last one is removed, so it cannot be written again after. */
  private beating: Promise<void> = Promise.resolve();
  /** Messages taken over from another cell whose workspace is still to be rebuilt here. */
  private readonly rebuilds = new Set<string>();

  constructor(private readonly opts: CellOptions) {
    this.keyPrefix = cellKeyPrefix(opts.prefix, opts.cellId);
    this.queueName = cellQueueName(opts.cellId);
  }

  get id(): string {
    return this.opts.cellId;
  }

  /** Beats now and every heartbeat; each beat also hands on the queues of cells that are gone. */
  async start(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => {
      this.beating = this.beat().then(() => this.handOn());
    }, this.opts.heartbeatMs);
    this.timer.unref();
  }

  async beat(): Promise<void> {
    if (this.closed) return;
    try {
      const room = this.draining ? 0 : await this.opts.room();
      await writeCellBeat(
        this.opts.redis,
        this.opts.prefix,
        { cellId: this.id, at: Date.now(), room: Math.max(0, room), draining: this.draining, holdMs: this.opts.holdMs },
        this.opts.lostMs,
      );
    } catch (err) {
      // The next beat tries again; missing several makes the cell count as gone, which is what it is then.
      this.opts.log.warn({ err: normalizeError(err).message }, "cell heartbeat failed");
    }
  }

  /**
   * Under the message's turn, before its execution runs here: records that this cell holds the message.
   * One that another cell held lost its kernel there: a kernel this cell may still map for it (it held the
   * message before) has stale variables and goes, and the workspace here (absent, or stale) is removed and
   * rebuilt from object storage by the execution's preparation (see needsRebuild).
   */
  async hold(turn: MessageTurn, workspaceDir: string, evict: (kernelId: string) => Promise<void>): Promise<void> {
    const before = await holdMessage(this.opts.redis, this.opts.prefix, turn.messageKey, this.id, this.opts.holdMs);
    if (before === this.id) return;
    if (before === null) {
      // A new message, or one idle so long that nobody holds it (its placement says nothing of where it was):
      // a workspace that is here is kept as it is.
      if (!(await exists(workspaceDir))) this.rebuilds.add(turn.messageKey);
      return;
    }
    this.opts.log.info({ messageKey: turn.messageKey, from: before }, "took over a message from another cell");
    if (turn.mapping) await evict(turn.mapping.kernelId);
    await removeWorkspaceDir(workspaceDir);
    this.rebuilds.add(turn.messageKey);
  }

  /** Whether the message's workspace is to be rebuilt from its registered files before its next run here. */
  needsRebuild(messageKey: string): boolean {
    return this.rebuilds.has(messageKey);
  }

  rebuilt(messageKey: string): void {
    this.rebuilds.delete(messageKey);
  }

  /** Takes no new message from now on (its beat says so at once); turns under way finish. */
  async drain(): Promise<void> {
    this.draining = true;
    await this.beat();
  }

  /** After its queues' workers closed: what is still queued here goes to the shared queue, and it stops beating. */
  async close(connection: Redis): Promise<void> {
    this.draining = true;
    if (this.timer) clearInterval(this.timer);
    this.closed = true;
    await this.beating;
    await removeCellBeat(this.opts.redis, this.opts.prefix, this.id);
    await handOnGoneCells({ connection, prefix: this.opts.prefix, log: this.opts.log, only: this.id });
  }

  private async handOn(): Promise<void> {
    if (this.closed) return;
    await handOnGoneCells({ connection: this.opts.redis, prefix: this.opts.prefix, log: this.opts.log }).catch(
      (err: unknown) =>
        this.opts.log.warn({ err: normalizeError(err).message }, "handing on gone cells' queues failed"),
    );
  }
}
