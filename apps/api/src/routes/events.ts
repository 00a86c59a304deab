import type { Request, Response } from "express";
import { Router } from "express";
import { findExecution, findExecutionWithFiles, isTerminal } from "@codeinterp/db";
import type { ExecutionEvent } from "@codeinterp/queue";
import { compareStreamIds } from "@codeinterp/queue";
import { userOf } from "../auth";
import type { ApiDeps } from "../deps";
import { notFound } from "../errors";
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
    const unsubscribe = await deps.events.subscribe(id, (e) => (replaying ? buffered.push(e) : deliver(e)));
    let current;
    try {
      current = await findExecution(deps.db, userId, id);
    } catch (err) {
      await unsubscribe();
      throw err;
    }
    if (!current) {
      await unsubscribe();
      throw notFound("execution");
    }

    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    res.flushHeaders();
    let closed = false;
    let lastId = typeof req.headers["last-event-id"] === "string" ? req.headers["last-event-id"] : undefined;
    const send = (event: string, data: unknown, eventId?: string) => {
      if (closed) return;
      res.write(`${eventId ? `id: ${eventId}\n` : ""}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    const finish = async () => {
      if (closed) return;
      const final = await findExecutionWithFiles(deps.db, userId, id);
      if (final) send("done", serializeExecution(final, final.files));
      closed = true;
      res.end();
    };

    let finishing: Promise<void> | null = null;
    deliver = (e: ExecutionEvent) => {
      if (lastId && compareStreamIds(e.id, lastId) <= 0) return;
      lastId = e.id;
      if (e.type === "done") {
        // Never unhandled: a database error here would otherwise take the whole API process down.
        finishing ??= finish().catch(() => {
          closed = true;
          res.end();
        });
        return;
      }
      const { type, id: eventId, ...data } = e;
      send(type, data, eventId);
    };
    // Each heartbeat also re-reads the status: a `done` event lost with a Redis restart must not leave the
    // stream open forever.
    const heartbeat = setInterval(() => {
      if (closed) return;
      res.write(": keep-alive\n\n");
      findExecution(deps.db, userId, id)
        .then((row) => {
          if (row && isTerminal(row.status) && !replaying) {
            finishing ??= finish().catch(() => {
              res.end();
            });
          }
        })
        // A failed poll is retried on the next heartbeat; the stream's own events still arrive.
        .catch(() => undefined);
    }, HEARTBEAT_MS);
    req.on("close", () => {
      closed = true;
      clearInterval(heartbeat);
      void unsubscribe();
    });

    try {
      if (isTerminal(current.status)) {
        // Over already: the stored result is the whole story.
        send("status", { status: current.status });
        await finish();
        return;
      }
      const logged = await deps.events.replay(id, lastId);
      if (logged.length === 0) send("status", { status: current.status });
      for (const e of logged) deliver(e);
      replaying = false;
      for (const e of buffered.splice(0)) deliver(e);
    } finally {
      if (closed) {
        clearInterval(heartbeat);
        await unsubscribe();
      }
    }
  });
  return router;
}
