import type { KernelMapping, MessageTurn } from "./broker";
import type { Reservation } from "./live-kernels";
import type { HeldLock } from "./lock";

/** What a turn knows of its message, read under its lock: its kernel, and whether a restart was asked for. */
export interface TurnState {
  mapping: KernelMapping | null;
  resetAsked: boolean;
}

/** A turn as the broker sees it: the lock, and what it reserved for a kernel start. */
export class Turn implements MessageTurn {
  /** A place under the ceiling reserved by makeRoom and not used yet. */
  place: Reservation | null = null;
  private ended = false;

  constructor(
    readonly messageKey: string,
    public mapping: KernelMapping | null,
    /** A restart was asked for (the Jupyter surface): this turn starts the message on a fresh kernel. */
    public resetAsked: boolean,
    private readonly lock: HeldLock,
  ) {}

  async release(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    const place = this.place;
    this.place = null;
    // An unused place lapses with its lease if the drop fails.
    await place?.drop().catch(() => undefined);
    await this.lock.release();
  }
}

/** Turns come only from this broker: one from elsewhere would carry a lock and mapping it never checked. */
export function turnOf(turn: MessageTurn): Turn {
  if (!(turn instanceof Turn)) throw new TypeError("not a turn of this broker");
  return turn;
}

/**
 * The turn, once its lock is held. The state read right behind the lock's first attempt is valid only if
 * the lock was free then (the read ran under it); otherwise it is read again.
 */
export async function startTurn(
  messageKey: string,
  lock: HeldLock,
  early: Promise<TurnState | undefined>,
  read: () => Promise<TurnState>,
): Promise<Turn> {
  try {
    const state = (lock.firstTry ? await early : undefined) ?? (await read());
    return new Turn(messageKey, state.mapping, state.resetAsked, lock);
  } catch (err) {
    await lock.release();
    throw err;
  }
}
