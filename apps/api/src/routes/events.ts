import type { Request, Response } from "express";
import { Router } from "express";
import { findExecution, isTerminal } from "@codeinterp/db";
import type { ExecutionWithFiles } from "@codeinterp/db";
import type { ExecutionEvent } from "@codeinterp/queue";
import { compareStreamIds } from "@codeinterp/queue";
import { userOf } from "../auth";
import type { ApiDeps } from "../deps";
import { notFound } from "../errors";
import { watchExecution } from "../executions/service";
import { ExecutionParams } from "../schemas";
import { serializeExecution } from "../serialize";
import { parseInput } from "../validate";

const HEARTBEAT_MS = 15_000;

/**
 * Server-Sent Events for one execution: what already happened (replayed from the execution's Redis log, or
 * from the stored result once it is over), then live events, then `done` carrying the whole execution.
 * `Last-Event-ID` resumes after the last event a reconnecting client saw.
 */
export function eventsRouter(deps: ApiDeps): Router {
  const router = Router();
  router.get("/executions/:id/events", async (req: Request, res: Response) => {
    const userId = userOf(res);
    const { id } = parseInput(ExecutionParams, req.params, "params");
    // Subscribed before the one read, so nothing between the read and the live events is missed; events
    // are only buffered until the read says the execution is this user's.
    let replaying = true;
    const buffered: ExecutionEvent[] = [];
    let deliver: (e: ExecutionEvent) => void = () => undefined;
    const watch = await watchExecution(deps, userId, id, (e) => (replaying ? buffered.push(e) : deliver(e)));
    const closed = new AbortController();
    try {
      const current = await findExecution(deps.db, userId, id);
      if (!current) throw notFound("execution");

      res.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache, no-transform",
        connection: "keep-alive",
        "x-accel-buffering": "no",
      });
      res.flushHeaders();
      req.on("close", () => closed.abort());
      let lastId = typeof req.headers["last-event-id"] === "string" ? req.headers["last-event-id"] : undefined;
      const send = (event: string, data: unknown, eventId?: string) => {
        if (closed.signal.aborted) return;
        res.write(`${eventId ? `id: ${eventId}\n` : ""}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      };
      const finish = (final: ExecutionWithFiles | null) => {
        if (final) send("done", serializeExecution(final, final.files));
        res.end();
      };
      deliver = (e: ExecutionEvent) => {
        if (lastId && compareStreamIds(e.id, lastId) <= 0) return;
        lastId = e.id;
        const { type, id: eventId, ...data } = e;
        send(type, data, eventId);
      };

      if (isTerminal(current.status)) {
        // Over already: the stored result is the whole story.
        send("status", { status: current.status });
        finish(await watch.end({ ms: 0 }));
        return;
      }
      const logged = await deps.events.replay(id, lastId);
      if (logged.length === 0) send("status", { status: current.status });
      // A `done` in the log means it is over: the final read below answers at once.
      for (const e of logged) if (e.type !== "done") deliver(e);
      replaying = false;
      for (const e of buffered.splice(0)) deliver(e);
      const heartbeat = setInterval(() => {
        if (!closed.signal.aborted) res.write(": keep-alive\n\n");
      }, HEARTBEAT_MS);
      try {
        // Re-read at each heartbeat: a `done` event lost with a Redis restart must not leave the stream open.
        const ended = logged.some((e) => e.type === "done");
        finish(
          await watch.end({ ms: ended ? 0 : Number.POSITIVE_INFINITY, signal: closed.signal, recheckMs: HEARTBEAT_MS }),
        );
      } finally {
        clearInterval(heartbeat);
      }
    } finally {
      await watch.close();
    }
  });
  return router;
}
