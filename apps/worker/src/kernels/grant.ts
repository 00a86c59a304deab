import type { KernelSession } from "@codeinterp/kernel";
import { clearKernelReset } from "@codeinterp/queue";
import type { LeaseRequest, LeaseSource } from "./broker";
import { newKernel } from "./new-kernel";
import type { BrokerParts } from "./parts";
import type { Turn } from "./turn";

/** A kernel given to a turn, before it is set up to run the message's code. */
export interface Grant {
  session: KernelSession;
  how: LeaseSource;
  /** A new kernel because the message's previous one was shut down to stay under the live-kernel ceiling. */
  stateReset: boolean;
  /** The workspace path this kernel already starts every cell in (a sandboxed pool kernel's /mnt/data). */
  enteredDir?: string;
  /**
   * The gateway's answer to "does it still exist?" for a kernel whose websocket may look alive while it is
   * gone (a reused one not used moments ago, a pool kernel that waited): asked now, awaited before code is sent.
   */
  stillThere?: Promise<boolean>;
}

/**
 * The message's kernel if it is alive, else a new one (its old one, if any, is forgotten and shut down). A
 * restart asked for through the API (the Jupyter surface) is consumed here, under the turn.
 */
export async function grantKernel(parts: BrokerParts, turn: Turn, req: LeaseRequest): Promise<Grant> {
  const { sessions, kernels } = parts;
  const mapping = turn.mapping;
  // The mark is cleared once the old kernel is forgotten: a failure before that leaves it for a retry.
  if (turn.resetAsked) {
    if (mapping) await kernels.forget(turn.messageKey, mapping.kernelId, true);
    turn.mapping = null;
    await clearKernelReset(parts.redis, parts.opts.prefix, turn.messageKey);
    turn.resetAsked = false;
  } else if (mapping) {
    const attached = await sessions.attach(mapping.kernelId);
    if (attached) {
      sessions.use(attached.session);
      return { ...attached, how: "attached", stateReset: false };
    }
    await kernels.forget(turn.messageKey, mapping.kernelId, true);
    turn.mapping = null;
  }
  await req.beforeNewKernel?.();
  const fresh = await newKernel(parts, turn, req);
  let stateReset: boolean;
  try {
    sessions.use(fresh.session);
    await parts.live.extend([fresh.session.id], kernels.leaseMs);
    // Taken only once a kernel is there: a start that failed leaves the note for the next try.
    stateReset = await parts.mappings.takeEvictedMark(turn.messageKey);
  } catch (err) {
    await kernels.discard(fresh.session);
    throw err;
  }
  // Not the message's kernel yet: `bindKernel` records it once it is set up to run the message's code.
  const stillThere =
    fresh.how === "adopted" ? { stillThere: parts.gateway.hasKernel(fresh.session.id).catch(() => false) } : {};
  return { ...fresh, stateReset, ...stillThere };
}

/**
 * Records a new kernel as the message's, once it is set up to run the message's code (so no other execution
 * can pick up a kernel that would run outside the message's workspace).
 */
export async function bindKernel(parts: BrokerParts, turn: Turn, session: KernelSession): Promise<void> {
  await parts.kernels.record(turn.messageKey, session.id, Date.now());
  turn.mapping = { kernelId: session.id, lastUsed: Date.now() };
}

/** Gives the kernel back; `discard`: it is dead or its state unknown, shut it down rather than keep it. */
export async function giveBack(parts: BrokerParts, turn: Turn, session: KernelSession, discard: boolean) {
  if (discard || session.isDead) {
    await parts.kernels.forget(turn.messageKey, session.id, true);
    turn.mapping = null;
    return;
  }
  const now = Date.now();
  parts.sessions.released(session.id);
  await parts.kernels.record(turn.messageKey, session.id, now);
  turn.mapping = { kernelId: session.id, lastUsed: now };
}
