// 1,000 SSE subscribers to one running execution: all connected while it runs, all get `done`.
import { writeFile } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { workspaceDirFor } from "@codeinterp/workspace";
import { sse } from "../client";
import { MiB, sleep } from "../context";
import { memoryOf } from "../services";
import { now, round } from "../stats";
import type { Bench } from "../context";

export async function sseSubscribers(b: Bench): Promise<void> {
  const { ci, P, results, target, log, msg, apiUrl, key, dataDir, api } = b;
  const n = P.sseSubscribers;
  log(`SSE: ${n} concurrent subscribers to one running execution`);
  const sseMsg = msg("sse");
  const go = path.join(workspaceDirFor(dataDir, "bench-user", sseMsg), ".go");
  const code = `import os, time\nt = time.time()\nwhile not os.path.exists(${JSON.stringify("/mnt/data/.go")}) and time.time() - t < 120:\n    time.sleep(0.02)\nprint('released')\n`;
  const exec = await ci.submit({ messageId: sseMsg, code });
  for (let i = 0; i < 200; i++) {
    if ((await ci.get(exec.id)).status === "running") break;
    await sleep(50);
  }
  const apiMemBefore = memoryOf(api.pid);
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  let connected = 0;
  let allConnected: () => void = () => undefined;
  const allIn = new Promise<void>((r) => (allConnected = r));
  const a = now();
  const subs = Array.from({ length: n }, () =>
    sse(apiUrl, key, exec.id, agent, () => {
      if (++connected === n) allConnected();
    }),
  );
  await Promise.race([allIn, sleep(60_000)]);
  const connectMs = now() - a;
  const connectedBeforeRelease = connected;
  const stillRunning = (await ci.get(exec.id)).status === "running";
  const apiMemHeld = memoryOf(api.pid);
  const released = now();
  await writeFile(go, "");
  const outs = await Promise.all(subs);
  const done = outs.filter((o) => o.done && o.doneStatus === "completed").length;
  const lastDone = Math.max(...outs.map((o) => o.doneAt ?? 0));
  const errors: Record<string, number> = {};
  for (const o of outs) if (o.error) errors[o.error] = (errors[o.error] ?? 0) + 1;
  agent.destroy();
  results.sse = {
    subscribers: n,
    connected_before_release: connectedBeforeRelease,
    execution_still_running_when_all_connected: stillRunning,
    connect_all_ms: round(connectMs, 0),
    received_done: done,
    release_to_last_done_ms: round(lastDone - released, 0),
    errors,
    api_rss_before_MiB: round(apiMemBefore.rss / MiB, 1),
    api_rss_holding_MiB: round(apiMemHeld.rss / MiB, 1),
  };
  target(
    `${n} SSE subscribers held`,
    `${n} done`,
    `${done}/${n} got done (${connectedBeforeRelease} connected while running)`,
    done === n && connectedBeforeRelease === n && stillRunning,
  );
}
