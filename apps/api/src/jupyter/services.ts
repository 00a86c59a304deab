import type { WebSocket } from "ws";
import { findExecution, isTerminal } from "@codeinterp/db";
import type { ApiDeps } from "../deps";
import { cancelExecution } from "../executions/service";
import { createSessionStore } from "./auth";
import type { FacadeKernel } from "./kernels";
import { createKernelStore } from "./kernels";

/** What the REST routes and the websocket share in one API process. */
export function createJupyterServices(deps: ApiDeps) {
  const kernels = createKernelStore(deps.redis, deps.queuePrefix, deps.env.JUPYTER_KERNEL_IDLE_MS);
  const sessions = createSessionStore(deps.redis, deps.queuePrefix, deps.env.JUPYTER_SESSION_TTL_MS);
  // Websockets this process holds, per kernel, so a shutdown closes them as Jupyter Server does.
  const sockets = new Map<string, Set<WebSocket>>();

  /** Interrupt = cancel the execution running for the kernel (the worker interrupts the kernel). */
  async function interrupt(k: FacadeKernel): Promise<void> {
    const current = await kernels.get(k.userId, k.id);
    if (!current?.running) return;
    const execution = await findExecution(deps.db, k.userId, current.running);
    if (execution && !isTerminal(execution.status)) await cancelExecution(deps, execution);
  }

  return {
    kernels,
    sessions,
    interrupt,
    /** Restart: what runs now is interrupted, and the next execution starts on a fresh kernel (variables gone, files kept). */
    async restart(k: FacadeKernel): Promise<void> {
      await interrupt(k);
      await kernels.requestReset(k);
      deps.log.info({ kernelId: k.id, messageId: k.messageId }, "jupyter kernel restart requested");
    },
    /** The id is gone at once; the workers' next sweep shuts the message's kernel down (it would idle out anyway). */
    async shutdown(k: FacadeKernel): Promise<void> {
      await interrupt(k);
      await kernels.remove(k);
      for (const ws of sockets.get(k.id) ?? []) ws.close(1000, "kernel shut down");
      sockets.delete(k.id);
    },
    track(kernelId: string, ws: WebSocket) {
      let set = sockets.get(kernelId);
      if (!set) sockets.set(kernelId, (set = new Set()));
      set.add(ws);
    },
    untrack(kernelId: string, ws: WebSocket) {
      const set = sockets.get(kernelId);
      set?.delete(ws);
      if (set?.size === 0) sockets.delete(kernelId);
    },
  };
}
export type JupyterServices = ReturnType<typeof createJupyterServices>;

const byDeps = new WeakMap<ApiDeps, JupyterServices>();
/** One set of services per API (the router and the websocket are wired separately from the same deps). */
export function jupyterServicesFor(deps: ApiDeps): JupyterServices {
  let s = byDeps.get(deps);
  if (!s) byDeps.set(deps, (s = createJupyterServices(deps)));
  return s;
}
