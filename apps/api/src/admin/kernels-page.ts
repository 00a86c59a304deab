import { Router } from "express";
import { requireAdmin } from "../auth";
import type { ApiDeps } from "../deps";
import { readLiveKernels } from "./live-kernels";
import type { LiveKernelsReport } from "./live-kernels";

export const KERNELS_PAGE_PATH = "/admin/kernels";

/**
 * The live kernels, the ceiling, evictions and waits, for operators: linked from Bull Board's header, behind
 * the same admin token. HTML for a browser, JSON for `Accept: application/json`.
 */
export function kernelsPageRouter(
  deps: Pick<ApiDeps, "db" | "redis" | "queuePrefix"> & { adminToken: string | undefined },
): Router {
  const router = Router();
  router.get(KERNELS_PAGE_PATH, requireAdmin(deps.adminToken, { basicRealm: "codeinterp" }), async (req, res) => {
    const report = await readLiveKernels(deps);
    res.setHeader("cache-control", "no-store");
    if (req.accepts(["html", "json"]) === "json") {
      res.json(report);
      return;
    }
    res.type("html").send(renderPage(report));
  });
  return router;
}

const esc = (s: unknown) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function renderPage(r: LiveKernelsReport): string {
  const rows = r.kernels
    .map((k) => {
      const m = k.message;
      const cells = m
        ? [
            k.kernelId,
            m.userId,
            m.chatId,
            m.messageId,
            `${m.executionId} (${m.status})`,
            m.createdAt.toISOString(),
            k.leaseUntil,
          ]
        : [k.kernelId, "", "", "pre-started (pool)", "", "", k.leaseUntil];
      return `<tr>${cells.map((c) => `<td>${esc(c)}</td>`).join("")}</tr>`;
    })
    .join("\n");
  const ceiling = r.ceiling === null ? "unknown (no live worker)" : String(r.ceiling);
  const mib = (b: number) => `${Math.round(b / 1024 ** 2)} MiB`;
  const memory = r.memory
    ? `${mib(r.memory.usedBytes)} / ${mib(r.memory.highWatermarkBytes)} / ${mib(r.memory.budgetBytes)} (host available: ${mib(r.memory.hostAvailableBytes)})`
    : "not read (admitted by count)";
  return `<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="5"><title>codeinterp: live kernels</title>
<style>body{font-family:system-ui,sans-serif;margin:1.5rem}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;font-size:.9rem}dl{display:grid;grid-template-columns:max-content auto;gap:.25rem 1rem}</style>
</head><body>
<p><a href="/admin/queues">&larr; Bull Board</a></p>
<h1>Live kernels</h1>
<dl>
<dt>Live kernels</dt><dd id="live">${esc(r.live)}</dd>
<dt>Ceiling (MAX_LIVE_KERNELS)</dt><dd id="ceiling">${esc(ceiling)}</dd>
<dt>Being started</dt><dd>${esc(r.starting)}</dd>
<dt>Memory in use by kernels / high watermark / budget</dt><dd id="memory">${esc(memory)}</dd>
<dt>Evictions (idle kernels shut down for a new one, or for memory)</dt><dd id="evictions">${esc(r.evictions)} (memory: ${esc(r.memoryEvictions)})</dd>
<dt>Waits (executions queued with every kernel busy)</dt><dd id="waits">${esc(r.capacityWaits)}</dd>
<dt>Live workers</dt><dd>${esc(r.workers)}</dd>
</dl>
<p>Evictions and waits are counted by the live workers since each started.</p>
<table><thead><tr><th>Kernel</th><th>User</th><th>Chat</th><th>Message</th><th>Latest execution</th><th>Submitted</th><th>Lease until</th></tr></thead>
<tbody>
${rows}
</tbody></table>
</body></html>`;
}
