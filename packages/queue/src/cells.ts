import { Queue } from "bullmq";
import type { Job } from "bullmq";
import { z } from "zod";
import { workspaceId } from "@codeinterp/workspace";
import { queueNames } from "./catalog";
import { enqueueExecution } from "./execution-state";
import { cellAliveIndex, cellAliveKey, cellKeyPrefix, cellsKnownKey, messageCellKey } from "./keys";
import { readLiveEntries } from "./live-index";
import type { Redis } from "./redis";

/**
 * Cells: a cell is one machine's worker(s) with its own sandboxed Jupyter server and its own disk for
 * workspaces. Cells share only Postgres, Redis and object storage, so a message's kernel exists in one cell
 * only. This module owns the rule that routes executions to cells:
 *
 * - a message's follow-ups go to the queue of the cell holding its kernel (`executions-cell-<id>`), which
 *   only that cell serves;
 * - a new message is placed by the producer on the cell with most free room, read from the cells'
 *   heartbeats. The producer sees every cell's room in one read, so a message goes where room is instead of
 *   to whichever cell polls first (pulling from one shared queue places work on the fastest poller, busy or
 *   not); the choice is random, weighted by room squared, so producers reading the same beat (up to one beat
 *   old) do not all pick one cell;
 * - with no cell with room, or when the message's cell is gone or draining, the job goes to the shared queue
 *   (`executions`) that every cell serves: any cell with a free slot takes it (a message moved so runs in a
 *   workspace rebuilt from object storage: apps/worker/src/cells).
 */

/** A cell id names a queue and Redis keys: a hostname or pod name fits. */
export const CELL_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

export const cellQueueName = (cellId: string) => `${queueNames.executions}-cell-${cellId}`;

export const cellBeatSchema = z.object({
  cellId: z.string().regex(CELL_ID),
  at: z.number(),
  /** New messages it can take now: free worker slots, at most its free kernel places. */
  room: z.number().int().min(0),
  /** It is shutting down: it finishes its turns and takes no new message. */
  draining: z.boolean(),
  /** How long it keeps an idle message's kernel: the placement record of a new message lasts as long. */
  holdMs: z.number().int().min(1),
});
export type CellBeat = z.infer<typeof cellBeatSchema>;

export async function writeCellBeat(redis: Redis, prefix: string, beat: CellBeat, ttlMs: number): Promise<void> {
  await redis
    .multi()
    .set(cellAliveKey(prefix, beat.cellId), JSON.stringify(beat), "PX", ttlMs)
    .zadd(cellAliveIndex(prefix), beat.at + ttlMs, beat.cellId)
    .sadd(cellsKnownKey(prefix), beat.cellId)
    .exec();
}

export async function removeCellBeat(redis: Redis, prefix: string, cellId: string): Promise<void> {
  await redis.multi().del(cellAliveKey(prefix, cellId)).zrem(cellAliveIndex(prefix), cellId).exec();
}

/** The latest beat of every cell whose heartbeat has not expired. */
export async function readCellBeats(redis: Redis, prefix: string): Promise<CellBeat[]> {
  const out: CellBeat[] = [];
  for (const raw of await readLiveEntries(redis, cellAliveIndex(prefix), (id) => cellAliveKey(prefix, id))) {
    try {
      const parsed = cellBeatSchema.safeParse(JSON.parse(raw));
      if (parsed.success) out.push(parsed.data);
    } catch {
      // A half-written or foreign value: skip it.
    }
  }
  return out;
}

/** Cells that have (or had) a queue: the live ones and those whose queue is still to be handed on. */
export async function knownCells(redis: Redis, prefix: string): Promise<string[]> {
  return (await redis.smembers(cellsKnownKey(prefix))).filter((id) => CELL_ID.test(id));
}

export async function forgetCell(redis: Redis, prefix: string, cellId: string): Promise<void> {
  await redis.srem(cellsKnownKey(prefix), cellId);
}

/**
 * A placement by the producer is recorded as `~<cell>`: the cell is to hold the message, but has not run it
 * yet. When it does, it records itself plainly and learns from what it replaced whether another cell held the
 * message before (a placement tells nothing: the message may be new, or idle past its record's lifetime).
 */
const PLACED = "~";
const cellIn = (value: string | null): string | null => {
  const id = value?.startsWith(PLACED) ? value.slice(PLACED.length) : value;
  return id && CELL_ID.test(id) ? id : null;
};

/** The cell that holds (or is to hold) the message, or null. */
export async function readMessageCell(redis: Redis, prefix: string, messageKey: string): Promise<string | null> {
  return cellIn(await redis.get(messageCellKey(prefix, messageKey)));
}

/**
 * Whether a cell other than the one whose kernels are kept under `ownKeyPrefix` (its cellKeyPrefix) holds, or
 * is to hold, the message: that cell's kernel is the message's, whatever this one may still have.
 */
export async function heldByOtherCell(
  redis: Redis,
  prefix: string,
  messageKey: string,
  ownKeyPrefix: string,
): Promise<boolean> {
  const cell = await readMessageCell(redis, prefix, messageKey);
  return cell !== null && cellKeyPrefix(prefix, cell) !== ownKeyPrefix;
}

/**
 * Records that `cellId` holds the message now, for `ttlMs`; returns the cell that held it before (null: none
 * did, or it was only placed).
 */
export async function holdMessage(
  redis: Redis,
  prefix: string,
  messageKey: string,
  cellId: string,
  ttlMs: number,
): Promise<string | null> {
  const before = await redis.set(messageCellKey(prefix, messageKey), cellId, "PX", ttlMs, "GET");
  return before?.startsWith(PLACED) ? null : cellIn(before);
}

/** A cell with room for a new message, weighted by room squared; null: none has room. */
export function pickCell(beats: readonly CellBeat[], random: () => number = Math.random): CellBeat | null {
  const open = beats.filter((b) => !b.draining && b.room > 0);
  const total = open.reduce((sum, b) => sum + b.room * b.room, 0);
  let r = random() * total;
  for (const b of open) {
    r -= b.room * b.room;
    if (r < 0) return b;
  }
  return open.at(-1) ?? null;
}

export interface ExecutionRouterOptions {
  connection: Redis;
  prefix: string;
  /** How long one read of the cells' heartbeats is used for placement (default 500 ms). */
  beatsMaxAgeMs?: number;
  random?: () => number;
}

/**
 * The one way executions are queued (the API's submit, the reconciler) and found again (the reconciler, a
 * cancel): by the rule above. Holds a BullMQ Queue per cell it has routed to.
 */
export class ExecutionRouter {
  private readonly queues = new Map<string, Queue>();
  private beats: { at: number; list: Promise<CellBeat[]> } | null = null;

  constructor(private readonly opts: ExecutionRouterOptions) {}

  /** The shared queue every cell serves. */
  get shared(): Queue {
    return this.queue(queueNames.executions);
  }

  queue(name: string): Queue {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(name, { connection: this.opts.connection, prefix: this.opts.prefix });
      this.queues.set(name, q);
    }
    return q;
  }

  /** The cells' own queues (live ones, and those still to be handed on): the rest of the execution queue. */
  async cellQueues(): Promise<Queue[]> {
    return (await knownCells(this.opts.connection, this.opts.prefix)).map((id) => this.queue(cellQueueName(id)));
  }

  /**
   * The queue a message's next execution goes to, by the rule above. A producer may ask while it records the
   * execution (a message placed for an execution that is then refused is only a placement that expires).
   */
  async place(userId: string, messageId: string): Promise<Queue> {
    const cell = await this.placeMessage(workspaceId(userId, messageId));
    return cell ? this.queue(cellQueueName(cell)) : this.shared;
  }

  /** Queues the run of an execution (twice makes one job) where `placed` says, else placed now; returns the queue's name. */
  async enqueue(
    execution: { id: string; userId: string; messageId: string },
    placed?: Promise<Queue>,
  ): Promise<string> {
    const queue = await (placed ?? this.place(execution.userId, execution.messageId));
    await enqueueExecution(queue, execution);
    return queue.name;
  }

  /** The job of an execution, in the shared queue or a cell's; undefined: there is none. */
  async findJob(executionId: string): Promise<Job | undefined> {
    const names = [
      queueNames.executions,
      ...(await knownCells(this.opts.connection, this.opts.prefix)).map(cellQueueName),
    ];
    for (const name of names) {
      const job = (await this.queue(name).getJob(executionId)) as Job | undefined;
      if (job) return job;
    }
    return undefined;
  }

  /** Removes an execution's queued job wherever it is (an active, locked job stays: its worker sees the end). */
  async remove(executionId: string): Promise<void> {
    const job = await this.findJob(executionId);
    // A job that started or ended meanwhile cannot be removed, and need not be: its worker sees the end.
    await job?.remove().catch(() => undefined);
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    this.queues.clear();
  }

  /** The live cell that is to run the message's next execution; null: the shared queue. */
  private async placeMessage(messageKey: string): Promise<string | null> {
    const { connection: redis, prefix } = this.opts;
    const [holder, beats] = await Promise.all([readMessageCell(redis, prefix, messageKey), this.liveCells()]);
    const open = (id: string) => beats.some((b) => b.cellId === id && !b.draining);
    if (holder) return open(holder) ? holder : null;
    const pick = pickCell(beats, this.opts.random);
    if (!pick) return null;
    // Recorded now, not when the job runs: a follow-up sent before then must follow it. Of two producers
    // placing one message at once, the first record wins.
    const set = await redis.set(messageCellKey(prefix, messageKey), `${PLACED}${pick.cellId}`, "PX", pick.holdMs, "NX");
    if (set === "OK") return pick.cellId;
    const other = await readMessageCell(redis, prefix, messageKey);
    return other && open(other) ? other : null;
  }

  private liveCells(): Promise<CellBeat[]> {
    const maxAge = this.opts.beatsMaxAgeMs ?? 500;
    if (!this.beats || Date.now() - this.beats.at > maxAge) {
      const list = readCellBeats(this.opts.connection, this.opts.prefix);
      this.beats = { at: Date.now(), list };
      // A failed read is not kept: the next call reads again.
      list.catch(() => (this.beats = null));
    }
    return this.beats.list;
  }
}
