import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { ExpressAdapter } from "@bull-board/express";
import type { Queue } from "bullmq";
import { Router } from "express";
import { requireAdmin } from "../auth";
import { KERNELS_PAGE_PATH } from "./kernels-page";

export const BULL_BOARD_PATH = "/admin/queues";

/**
 * Bull Board for the given queues at /admin/queues, behind ADMIN_TOKEN (Bearer, or basic auth with the
 * token as the password so a browser can open it). Without ADMIN_TOKEN the path answers 404 like every
 * admin route. Bull Board 9's Express adapter targets Express 5 and mounts as a sub-app.
 */
export function bullBoardRouter(adminToken: string | undefined, queues: Queue[]): Router {
  const router = Router();
  const guard = requireAdmin(adminToken, { basicRealm: "codeinterp" });
  if (!adminToken) {
    router.use(BULL_BOARD_PATH, guard);
    return router;
  }
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(BULL_BOARD_PATH);
  createBullBoard({
    queues: queues.map((q) => new BullMQAdapter(q)),
    serverAdapter,
    // The live kernels page (same admin token) from Bull Board's header.
    options: { uiConfig: { boardTitle: "codeinterp", miscLinks: [{ text: "Live kernels", url: KERNELS_PAGE_PATH }] } },
  });
  // eslint-disable-next-line @typescript-eslint/no-unsafe-argument -- @bull-board/express types its router as any
  router.use(BULL_BOARD_PATH, guard, serverAdapter.getRouter());
  return router;
}
