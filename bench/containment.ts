// The cost of containment (issue 11), before and after in one run, against the same Jupyter install:
// - containment: the codeinterp-sandbox kernelspec of the bench's server (bubblewrap with its own network
//   namespace, a cgroup per kernel, ZMQ over ipc sockets), as `npm start` runs kernels;
// - ipc_only: the same server's plain python3 kernelspec (ipc transport, no bwrap, no cgroup);
// - plain: a second server from the same install with the transport it had before (tcp) and no sandbox.
// Each measures kernel start (start request until the kernel answered the gateway's setup cell) and the warm
// `print(1)` round trip through a gateway session, with no codeinterp API or worker in between.
import { chown, mkdir } from "node:fs/promises";
import path from "node:path";
import { createKernelGateway, remoteKernelHost } from "@codeinterp/kernel";
import { SANDBOX_KERNEL_NAME, SANDBOX_MIN_UID, startLocalJupyter } from "@codeinterp/kernel-host";
import type { LocalJupyter } from "@codeinterp/kernel-host";
import { quietLog } from "./services";
import { now, round, summarize } from "./stats";
import type { Summary } from "./stats";

type Measured = { start: Summary; print: Summary };

export interface ContainmentParams {
  startN: number;
  printN: number;
}

interface Variant {
  name: string;
  gateway: ReturnType<typeof createKernelGateway>;
  starts: number[];
  prints: number[];
}

const variant = (name: string, jupyter: LocalJupyter, kernelName: string): Variant => ({
  name,
  gateway: createKernelGateway({
    baseUrl: jupyter.url,
    token: jupyter.token,
    log: quietLog,
    kernelName,
    host: remoteKernelHost,
  }),
  starts: [],
  prints: [],
});

/**
 * The variants take turns (one start each, then blocks of ten print(1) each), so a noisy moment on a shared
 * machine hits all of them rather than one.
 */
async function measure(variants: Variant[], kernelPath: string, p: ContainmentParams): Promise<void> {
  // One kernel each first, unmeasured: the first start of a kernelspec pays Python's cold imports from disk.
  for (const v of variants) await (await v.gateway.startKernel({ path: kernelPath })).shutdown();
  for (let i = 0; i < p.startN; i++) {
    for (const v of variants) {
      const t = now();
      const s = await v.gateway.startKernel({ path: kernelPath });
      v.starts.push(now() - t);
      await s.shutdown();
    }
  }
  const sessions = await Promise.all(variants.map((v) => v.gateway.startKernel({ path: kernelPath })));
  try {
    for (const s of sessions) for (let i = 0; i < 5; i++) await s.execute("print(1)", { timeoutMs: 30_000 });
    for (let done = 0; done < p.printN; done += 10) {
      for (const [k, v] of variants.entries()) {
        for (let i = 0; i < Math.min(10, p.printN - done); i++) {
          const t = now();
          const o = await sessions[k]!.execute("print(1)", { timeoutMs: 30_000 });
          v.prints.push(now() - t);
          if (o.status !== "ok" || o.stdout !== "1\n") throw new Error(`${v.name}: print(1) ended ${o.status}`);
        }
      }
    }
  } finally {
    await Promise.all(sessions.map((s) => s.shutdown().catch(() => undefined)));
  }
}

/**
 * `root` is the bench server's root_dir (traversable by the sandbox uids); `jupyter` that server, which must
 * offer the sandbox kernelspec.
 */
export async function benchContainment(root: string, jupyter: LocalJupyter, p: ContainmentParams) {
  if (!jupyter.sandbox.available)
    throw new Error(`the bench's Jupyter server has no sandbox: ${jupyter.sandbox.reason ?? "unknown"}`);
  // Sandboxed kernels run as the owner of their working directory, an unprivileged uid.
  const ws = path.join(root, "containment-ws");
  await mkdir(ws, { recursive: true });
  await chown(ws, SANDBOX_MIN_UID + 1, SANDBOX_MIN_UID + 1);
  const plainServer = await startLocalJupyter({
    rootDir: root,
    stateDir: path.join(root, "jupyter-plain-state"),
    port: 0,
    log: quietLog,
    sandbox: false,
    // Later assignments win: this server's kernels talk ZMQ over TCP on loopback, as before containment.
    extraConfig: '\nc.KernelManager.transport = "tcp"\n',
  });
  try {
    const [plainV, ipcV, containedV] = [
      variant("plain", plainServer, "python3"),
      variant("ipc_only", jupyter, "python3"),
      variant("containment", jupyter, SANDBOX_KERNEL_NAME),
    ];
    await measure([plainV, ipcV, containedV], "containment-ws", p);
    const [plain, ipcOnly, contained] = [plainV, ipcV, containedV].map((v) => ({
      start: summarize(v.starts),
      print: summarize(v.prints),
    })) as [Measured, Measured, Measured];
    const s = (x: Summary) => ({
      n: x.n,
      p50: round(x.p50, 2),
      p95: round(x.p95, 2),
      min: round(x.min, 2),
      max: round(x.max, 2),
    });
    return {
      keys: {
        containment_start_p50_ms: round(contained.start.p50, 1),
        plain_start_p50_ms: round(plain.start.p50, 1),
        containment_start_ratio: round(contained.start.p50 / plain.start.p50, 2),
        containment_print_p50_ms: round(contained.print.p50, 2),
        plain_print_p50_ms: round(plain.print.p50, 2),
        containment_print_ratio: round(contained.print.p50 / plain.print.p50, 2),
      },
      detail: {
        cgroups: jupyter.sandbox.caps.cgroup,
        containment: { start: s(contained.start), print: s(contained.print) },
        ipc_only: { start: s(ipcOnly.start), print: s(ipcOnly.print) },
        plain_tcp: { start: s(plain.start), print: s(plain.print) },
      },
    };
  } finally {
    await plainServer.stop();
  }
}
