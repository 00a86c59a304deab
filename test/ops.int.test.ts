import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import express from "express";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@codeinterp/logger";
import { bullBoardRouter } from "../apps/api/src/admin/bull-board";
import { errorHandler } from "../apps/api/src/errors";
import { client, startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

let stack: TestStack;
let api: ReturnType<typeof client>;
let userKey: string;

beforeAll(async () => {
  // A fixed pool of two (no demand sizing): the kernel gauges below are exact.
  stack = await startTestStack({ env: { KERNEL_POOL_MAX_SIZE: "2" } });
  const user = await stack.newUser("ops-user");
  userKey = user.key;
  api = client(stack.url, user.key);
});
afterAll(async () => {
  await stack?.close();
});

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The Prometheus text format, enough of it for assertions: samples and `# TYPE` lines. */
function parseMetrics(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split("\n")) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { samples, types };
}

async function scrape() {
  const res = await fetch(`${stack.url}/metrics`);
  const text = await res.text();
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
  return parseMetrics(text);
}

const find = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
const value = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  find(samples, name, labels)[0]?.value ?? 0;

/** Scrapes until `ok` holds (worker snapshots arrive asynchronously). */
async function scrapeUntil(ok: (m: Awaited<ReturnType<typeof scrape>>) => boolean, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = await scrape();
    if (ok(m) || Date.now() > deadline) return m;
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe("Bull Board at /admin/queues", () => {
  // Bodies are always read: an unread body keeps its socket open past the stack's close.
  const get = async (headers: Record<string, string> = {}, p = "/admin/queues") => {
    const res = await fetch(`${stack.url}${p}`, { headers });
    const body = await res.text();
    return {
      status: res.status,
      headers: res.headers,
      text: async () => body,
      json: async () => JSON.parse(body) as unknown,
    };
  };

  it("asks for credentials without the admin token", async () => {
    const res = await get();
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe('Basic realm="codeinterp"');
    expect((await get({ authorization: "Bearer not-the-admin-token-at-all" })).status).toBe(401);
    expect((await get({ authorization: `Bearer ${userKey}` })).status).toBe(401);
    expect(
      (await get({ authorization: `Basic ${Buffer.from("admin:wrong-password").toString("base64")}` })).status,
    ).toBe(401);
  });

  it("serves the board with the Bearer token", async () => {
    const res = await get({ authorization: `Bearer ${stack.adminToken}` });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/text\/html/);
    const html = await res.text();
    expect(html).toContain("/admin/queues");
  });

  it("serves the board with basic auth (any user, the token as password), including its API and assets", async () => {
    const basic = { authorization: `Basic ${Buffer.from(`admin:${stack.adminToken}`).toString("base64")}` };
    const page = await get(basic);
    expect(page.status).toBe(200);
    const html = await page.text();
    // The UI's assets are relative to <base href="/admin/queues/"> and sit behind the same guard.
    expect(html).toContain('<base href="/admin/queues/"');
    const asset = /src="(static\/js\/[^"]+\.js)"/.exec(html)?.[1];
    expect(asset).toBeDefined();
    const assetRes = await get(basic, `/admin/queues/${asset}`);
    expect(assetRes.status).toBe(200);
    expect(assetRes.headers.get("content-type")).toMatch(/javascript/);
    expect((await get({}, `/admin/queues/${asset}`)).status).toBe(401);

    const queues = await get(basic, "/admin/queues/api/queues");
    expect(queues.status).toBe(200);
    const body = (await queues.json()) as { queues: Array<{ name: string }> };
    expect(body.queues.map((q) => q.name).sort()).toEqual(["executions", "maintenance"]);
  });

  it("is 404 when ADMIN_TOKEN is unset", async () => {
    const app = express();
    app.use(bullBoardRouter(undefined, []));
    app.use(errorHandler(createLogger({ name: "test", level: "silent" })));
    const server = createServer(app).listen(0, "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    try {
      const { port } = server.address() as AddressInfo;
      const res = await fetch(`http://127.0.0.1:${port}/admin/queues`, {
        headers: { authorization: "Bearer whatever-token-0123456789" },
      });
      await res.arrayBuffer();
      expect(res.status).toBe(404);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});

describe("GET /metrics", () => {
  it("counts a finished execution, its duration, queue depth, kernels and bytes", async () => {
    const before = await scrape();
    const completedBefore = value(before.samples, "codeinterp_executions_total", { status: "completed" });
    const uploadedBefore = value(before.samples, "codeinterp_uploaded_bytes_total");
    const generatedBefore = value(before.samples, "codeinterp_registered_bytes_total", { source: "generated" });

    const form = new FormData();
    const csv = "a,b\n1,2\n3,4\n";
    form.append("file", new Blob([csv], { type: "text/csv" }), "nums.csv");
    const up = await fetch(`${stack.url}/v1/files`, {
      method: "POST",
      headers: { authorization: `Bearer ${userKey}` },
      body: form,
    });
    expect(up.status).toBe(201);
    const fileId = ((await up.json()) as { id: string }).id;

    const done = await api.run({
      code: "open('/mnt/data/out.txt', 'w').write('x' * 1000)\nprint(open('/mnt/data/nums.csv').read())",
      fileIds: [fileId],
    });
    expect(done.status).toBe("completed");

    // The pool refills the kernel the execution took from it.
    const after = await scrapeUntil(
      (m) =>
        find(m.samples, "codeinterp_job_duration_seconds_count", { status: "completed" }).length > 0 &&
        value(m.samples, "codeinterp_kernels_pool_available") === 2,
      30_000,
    );
    const { samples, types } = after;

    // Executions by final status, from the database.
    expect(types.get("codeinterp_executions_total")).toBe("counter");
    expect(value(samples, "codeinterp_executions_total", { status: "completed" })).toBeGreaterThanOrEqual(
      completedBefore + 1,
    );
    for (const status of ["failed", "timed_out", "cancelled"])
      expect(find(samples, "codeinterp_executions_total", { status })).toHaveLength(1);
    expect(find(samples, "codeinterp_executions_in_progress", { status: "queued" })).toHaveLength(1);

    // Queue depth by state, for both queues.
    expect(types.get("codeinterp_queue_jobs")).toBe("gauge");
    for (const state of ["waiting", "active", "delayed", "failed", "completed"]) {
      expect(find(samples, "codeinterp_queue_jobs", { queue: "executions", state })).toHaveLength(1);
      expect(find(samples, "codeinterp_queue_jobs", { queue: "maintenance", state })).toHaveLength(1);
    }
    expect(value(samples, "codeinterp_queue_jobs", { queue: "executions", state: "completed" })).toBeGreaterThanOrEqual(
      1,
    );

    // The duration histogram, published by the worker through Redis.
    expect(types.get("codeinterp_job_duration_seconds")).toBe("histogram");
    const buckets = find(samples, "codeinterp_job_duration_seconds_bucket", { status: "completed" });
    expect(buckets.length).toBeGreaterThan(5);
    expect(buckets.every((b) => b.labels.worker)).toBe(true);
    expect(find(buckets, "codeinterp_job_duration_seconds_bucket", { le: "+Inf" })[0]?.value).toBeGreaterThanOrEqual(1);
    expect(value(samples, "codeinterp_job_duration_seconds_sum", { status: "completed" })).toBeGreaterThan(0);

    // Kernel gauges from the worker (default KERNEL_POOL_SIZE 2).
    expect(value(samples, "codeinterp_workers")).toBe(1);
    const pool = find(samples, "codeinterp_kernels_pool_available");
    expect(pool).toHaveLength(1);
    expect(pool[0]!.value).toBe(2);
    expect(value(samples, "codeinterp_kernels_pool_target")).toBe(2);
    expect(find(samples, "codeinterp_kernels_in_use")).toHaveLength(1);
    expect(value(samples, "codeinterp_worker_concurrency")).toBe(4);

    // Bytes uploaded and registered.
    expect(value(samples, "codeinterp_uploaded_bytes_total")).toBe(uploadedBefore + csv.length);
    expect(value(samples, "codeinterp_registered_bytes_total", { source: "generated" })).toBeGreaterThanOrEqual(
      generatedBefore + 1000,
    );

    // Process metrics, and every source readable.
    expect(types.get("process_cpu_seconds_total")).toBe("counter");
    expect(types.get("nodejs_eventloop_lag_p99_seconds")).toBe("gauge");
    for (const source of ["db", "queue", "workers"])
      expect(value(samples, "codeinterp_metrics_source_up", { source })).toBe(1);
  });

  it("the pool gauge reaches the configured size, and a stopped worker's series go away", async () => {
    const filled = await scrapeUntil(
      (m) => find(m.samples, "codeinterp_kernels_pool_available").some((s) => s.value === 2),
      30_000,
    );
    expect(find(filled.samples, "codeinterp_kernels_pool_available").map((s) => s.value)).toContain(2);

    const extra = await stack.startWorker({
      WORKER_ID: "ops-extra-worker",
      KERNEL_POOL_SIZE: "0",
      WORKER_CONCURRENCY: "1",
    });
    const two = await scrapeUntil((m) => value(m.samples, "codeinterp_workers") === 2);
    expect(value(two.samples, "codeinterp_workers")).toBe(2);
    expect(value(two.samples, "codeinterp_kernels_pool_target", { worker: "ops-extra-worker" })).toBe(0);
    expect(value(two.samples, "codeinterp_worker_concurrency", { worker: "ops-extra-worker" })).toBe(1);

    await extra.close(2000);
    const one = await scrape();
    expect(value(one.samples, "codeinterp_workers")).toBe(1);
    expect(find(one.samples, "codeinterp_kernels_pool_target", { worker: "ops-extra-worker" })).toHaveLength(0);
  });

  it("every metric the Grafana dashboard queries is exposed", async () => {
    const dashboard = JSON.parse(
      await readFile(path.join(import.meta.dirname, "../grafana/codeinterp-dashboard.json"), "utf8"),
    ) as {
      panels: Array<{ type: string; targets?: Array<{ expr: string }> }>;
    };
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    expect(exprs.length).toBeGreaterThan(10);
    const { types } = await scrapeUntil((m) => m.types.has("codeinterp_job_duration_seconds"));
    const queried = new Set(
      exprs.flatMap((e) => [...e.matchAll(/\b((?:codeinterp|process|nodejs)_[a-z0-9_]+)\b/g)].map((m) => m[1]!)),
    );
    expect(queried.size).toBeGreaterThan(10);
    const missing = [...queried].filter((name) => {
      if (types.has(name)) return false;
      const base = name.replace(/_(bucket|sum|count)$/, "");
      return !(base !== name && ["histogram", "summary"].includes(types.get(base) ?? ""));
    });
    expect(missing).toEqual([]);
  });
});

describe("interactive API docs at /docs", () => {
  it("serves Swagger UI from local assets over the served /openapi.json", async () => {
    const res = await fetch(`${stack.url}/docs`);
    expect(res.status).toBe(200);
    expect(res.url).toBe(`${stack.url}/docs/`);
    expect(res.headers.get("content-type")).toMatch(/text\/html/);
    const html = await res.text();
    expect(html).not.toMatch(/https?:\/\//);

    const scripts = [...html.matchAll(/<script src="([^"]+)"/g)].map((m) => new URL(m[1]!, res.url).href);
    expect(scripts.length).toBeGreaterThanOrEqual(3);
    for (const href of [
      ...scripts,
      ...[...html.matchAll(/<link rel="stylesheet"[^>]*href="([^"]+)"/g)].map((m) => new URL(m[1]!, res.url).href),
    ]) {
      const asset = await fetch(href);
      expect(asset.status, href).toBe(200);
      await asset.arrayBuffer();
    }
    const init = await (await fetch(new URL("init.js", res.url))).text();
    expect(init).toContain("SwaggerUIBundle");

    // The page's spec URL resolves to the document the API serves.
    const specUrl = /data-spec-url="([^"]+)"/.exec(html)?.[1];
    expect(new URL(specUrl!, res.url).href).toBe(`${stack.url}/openapi.json`);
    const spec = await fetch(new URL(specUrl!, res.url));
    expect(spec.status).toBe(200);
    expect(((await spec.json()) as { openapi: string }).openapi).toMatch(/^3\./);

    // Only the UI's own files are served, not the rest of the package.
    for (const p of ["/docs/index.html", "/docs/package.json"]) {
      const res = await fetch(`${stack.url}${p}`);
      await res.arrayBuffer();
      expect(res.status).toBe(404);
    }
  });
});
