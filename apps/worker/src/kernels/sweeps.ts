import { heldByOtherCell, retireAgain, takeRetiredKernels } from "@codeinterp/queue";
import { tryLock } from "./lock";
import type { BrokerParts } from "./parts";

/** Shuts down message kernels idle past the TTL, and pool kernels of workers that are gone; returns how many. */
export async function sweepKernels(parts: BrokerParts): Promise<number> {
  const { redis, mappings, kernels, log, lockKey, lockTtlMs } = parts;
  const idleTtlMs = parts.opts.idleTtlMs;
  const orphans = await parts.owners.sweep();
  const stale = await mappings.idleSince(Date.now() - idleTtlMs, 100);
  let n = 0;
  for (const messageKey of stale) {
    // A message whose turn is held is in use: not idle, whatever its last use says.
    const lock = await tryLock(redis, lockKey(messageKey), lockTtlMs);
    if (!lock) continue;
    try {
      const mapping = await mappings.read(messageKey);
      if (!mapping) {
        await mappings.dropIndex(messageKey);
      } else if (mapping.lastUsed <= Date.now() - idleTtlMs) {
        await kernels.forget(messageKey, mapping.kernelId, true);
        n++;
      }
    } finally {
      await lock.release();
    }
  }
  if (n) log.info({ kernels: n }, "shut down idle message kernels");
  return n + orphans + (await sweepRetired(parts));
}

/**
 * Kernels of messages the API retired (a deleted Jupyter-surface kernel) go now, not after the idle TTL. The
 * marks are shared by every cell and each cell knows only its own kernels: a mark for a message another cell
 * holds goes back for that cell's sweep (until the message's placement lapses with its kernel).
 */
async function sweepRetired(parts: BrokerParts): Promise<number> {
  const { redis, mappings, kernels, log, lockKey, lockTtlMs } = parts;
  const prefix = parts.opts.prefix;
  const retired = await takeRetiredKernels(redis, prefix, 100);
  let n = 0;
  for (const messageKey of retired) {
    const lock = await tryLock(redis, lockKey(messageKey), lockTtlMs);
    if (!lock) {
      // An execution still holds it: next sweep.
      await retireAgain(redis, prefix, messageKey);
      continue;
    }
    try {
      const [mapping, elsewhere] = await Promise.all([
        mappings.read(messageKey),
        heldByOtherCell(redis, prefix, messageKey, parts.opts.cellPrefix ?? prefix),
      ]);
      // A kernel of this cell's goes either way (one left here when the message moved is stale); the holder's
      // own goes at its sweep.
      if (mapping) {
        await kernels.forget(messageKey, mapping.kernelId, true);
        n++;
      }
      if (elsewhere) await retireAgain(redis, prefix, messageKey);
    } finally {
      await lock.release();
    }
  }
  if (n) log.info({ kernels: n }, "shut down retired message kernels");
  return n;
}
