import type { KernelSession } from "@codeinterp/kernel";
import type { LeaseRequest } from "./broker";
import type { BrokerParts } from "./parts";
import type { Turn } from "./turn";

/** A kernel that is nobody's yet, for a turn. */
export interface NewKernel {
  session: KernelSession;
  how: "adopted" | "started";
  /** The workspace path this kernel already starts every cell in (a sandboxed pool kernel's /mnt/data). */
  enteredDir?: string;
}

/**
 * A new kernel for the turn: a pool kernel its workspace can adopt (no start latency), or one started in a
 * place under the ceiling (the one makeRoom reserved, else one waited for here).
 */
export async function newKernel(parts: BrokerParts, turn: Turn, req: LeaseRequest): Promise<NewKernel> {
  const { pool, layout, kernels } = parts;
  const fromPool = await pool.claim();
  if (fromPool) {
    // It started and preloaded at the background CPU weight; the message's code runs at the normal one.
    const [adopted] = await Promise.all([
      layout.adopt(fromPool.slot, req.workspaceDir),
      fromPool.session.setCpuPriority("normal"),
    ]);
    if (adopted) {
      // Sandboxed, the adopted slot is the workspace now (and keeps its owner); unsandboxed, it is made here.
      try {
        await layout.ensureWorkspace(req.workspaceDir, req.uid);
      } catch (err) {
        // Cleanup before the error is rethrown (that error is the caller's).
        await kernels.discard(fromPool.session);
        throw err;
      }
      // A kernel the server restarted while it waited lost its workspace hook: entered again like a new one.
      const entered = fromPool.session.generation === fromPool.warmGeneration ? fromPool.slot.kernelDir : undefined;
      return { session: fromPool.session, how: "adopted", ...(entered ? { enteredDir: entered } : {}) };
    }
    pool.putBack(fromPool);
  }
  const place = turn.place ?? (await parts.room.waitFor(turn.messageKey, req.signal));
  turn.place = null;
  try {
    await layout.ensureWorkspace(req.workspaceDir, req.uid);
    const session = await parts.gateway.startKernel({ path: req.kernelPath });
    // Without the binding the place still counts until its lease lapses: the ceiling stays safe.
    await place.bind(session.id, kernels.leaseMs).catch(() => undefined);
    return { session, how: "started" };
  } catch (err) {
    // The start's error is rethrown; an unused place lapses with its lease.
    await place.drop().catch(() => undefined);
    throw err;
  }
}
