// The embedded local Jupyter server, as `npm start` (scripts/stack.ts) and a cell (scripts/cell.ts) run it.
import path from "node:path";
import { loadKernelEgress, loadKernelLimits } from "@codeinterp/config";
import { EgressPolicy, parseEgressAllowlist, startLocalJupyter } from "@codeinterp/kernel-host";
import type { LocalJupyter } from "@codeinterp/kernel-host";

export async function startEmbeddedJupyter(dataDir: string, say: (msg: string) => void): Promise<LocalJupyter> {
  const line = (o: unknown, m?: string) => say(`jupyter: ${m ? `${m} ${JSON.stringify(o)}` : JSON.stringify(o)}`);
  const log = { debug: () => undefined, info: line, warn: line, error: line };
  // Kernels have no network unless KERNEL_EGRESS=allowlist opens the listed destinations through a proxy.
  const egress = loadKernelEgress(process.env);
  if (egress) say(`kernels may reach, through the egress proxy only: ${egress.allow}`);
  const jupyter = await startLocalJupyter({
    rootDir: dataDir,
    stateDir: path.join(dataDir, ".jupyter"),
    port: Number(process.env.JUPYTER_PORT ?? 0),
    log,
    // Restarted (same port and token) when it exits, or when it stops answering HTTP for
    // GATEWAY_UNRESPONSIVE_MS (the workers' setting, 10 s): then it is SIGKILLed with its kernels. Workers
    // see the restart through their own liveness probe.
    supervise: true,
    liveness: { unresponsiveMs: Number(process.env.GATEWAY_UNRESPONSIVE_MS ?? 10_000) },
    onRestart: (r) => say(`jupyter: restarted (${r.reason}); ${r.restarts} restart(s) so far`),
    sandboxLimits: loadKernelLimits(process.env),
    ...(egress ? { egress: { policy: new EgressPolicy(parseEgressAllowlist(egress.allow)) } } : {}),
  });
  say(`local Jupyter server on ${jupyter.url} (root ${dataDir})`);
  const { sandbox } = jupyter;
  say(
    sandbox.available
      ? `kernels: sandboxed, no network, ${sandbox.caps.cgroup ? `memory/CPU/process caps (cgroup v${sandbox.caps.cgroup})` : `rlimits only (${sandbox.caps.reason})`}`
      : `kernels are NOT sandboxed and have the network (${sandbox.reason}): use this only for yourself; see SECURITY.md`,
  );
  return jupyter;
}
