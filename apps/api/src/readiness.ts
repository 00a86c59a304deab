import type { Db } from "@codeinterp/db";
import { pingDatabase } from "@codeinterp/db";
import type { Redis, WorkerBeat } from "@codeinterp/queue";
import { readHeartbeats } from "@codeinterp/queue";
import type { ReadinessCheck, ReadinessReport } from "./deps";

const within = <T>(p: Promise<T>, ms: number) =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error("timeout")), ms).unref())]);

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/**
 * The kernel gateway as the workers last saw it. The API holds no gateway address or token (it never
 * drives kernels): each worker's heartbeat says whether its gateway answers, since when, and how often
 * it restarted.
 */
export function gatewayFromBeats(
  beats: WorkerBeat[],
  now = Date.now(),
): Pick<ReadinessReport, "workers" | "gateway" | "problems"> & { ok: boolean } {
  const workers = beats.map((b) => ({
    workerId: b.workerId,
    lastBeatAt: iso(b.at)!,
    gateway: b.gateway && { ...b.gateway, since: iso(b.gateway.since)!, lastRestartAt: iso(b.gateway.lastRestartAt) },
  }));
  const seen = beats.flatMap((b) => (b.gateway ? [{ workerId: b.workerId, ...b.gateway }] : []));
  if (beats.length === 0) {
    return {
      ok: false,
      workers,
      gateway: null,
      problems: ["no live worker: no worker has sent a heartbeat recently, so nothing can run code"],
    };
  }
  if (seen.length === 0)
    return { ok: false, workers, gateway: null, problems: ["no worker reports on its kernel gateway"] };
  const up = seen.filter((s) => s.reachable);
  const restarts = Math.max(...seen.map((s) => s.restarts));
  const lastRestart = Math.max(...seen.map((s) => s.lastRestartAt ?? 0));
  const gateway = {
    reachable: up.length > 0,
    since: iso(up.length > 0 ? Math.max(...up.map((s) => s.since)) : Math.min(...seen.map((s) => s.since)))!,
    restarts,
    lastRestartAt: lastRestart ? iso(lastRestart) : null,
    sandboxed: seen.every((s) => s.sandboxed),
  };
  const problems: string[] = [];
  const restarted =
    restarts > 0 ? `; restarted ${restarts} time${restarts === 1 ? "" : "s"}, last at ${gateway.lastRestartAt}` : "";
  if (up.length === 0) {
    const first = seen.reduce((a, b) => (b.since < a.since ? b : a));
    const forS = Math.round((now - first.since) / 1000);
    problems.push(
      `kernel gateway unresponsive since ${gateway.since} (${forS} s, seen by ${seen.length} worker${seen.length === 1 ? "" : "s"}: ${first.lastError ?? "no answer"})${restarted}`,
    );
  } else if (up.length < seen.length) {
    problems.push(
      `kernel gateway unreachable from worker(s) ${seen
        .filter((s) => !s.reachable)
        .map((s) => s.workerId)
        .join(", ")}${restarted}`,
    );
  }
  return { ok: up.length > 0, workers, gateway, problems };
}

/** Each dependency gets a short deadline, so /readyz answers promptly even while one of them hangs. */
export function createReadinessCheck(opts: {
  db: Db;
  redis: Redis;
  queuePrefix: string;
  timeoutMs?: number;
}): ReadinessCheck {
  const ms = opts.timeoutMs ?? 2000;
  const check = async <T>(fn: () => Promise<T>): Promise<{ ok: true; value: T } | { ok: false }> => {
    try {
      return { ok: true, value: await within(fn(), ms) };
    } catch {
      return { ok: false };
    }
  };
  return async () => {
    const [database, redis, beats] = await Promise.all([
      check(() => pingDatabase(opts.db)),
      check(() => opts.redis.ping()),
      check(() => readHeartbeats(opts.redis, opts.queuePrefix)),
    ]);
    const problems: string[] = [];
    if (!database.ok) problems.push("database unreachable");
    if (!redis.ok) problems.push("Redis unreachable");
    const gw = beats.ok ? gatewayFromBeats(beats.value) : null;
    if (!gw) problems.push("kernel gateway state unknown: worker heartbeats cannot be read from Redis");
    return {
      checks: {
        database: database.ok ? "ok" : "down",
        redis: redis.ok ? "ok" : "down",
        kernelGateway: gw?.ok ? "ok" : "down",
      },
      problems: [...problems, ...(gw?.problems ?? [])],
      gateway: gw?.gateway ?? null,
      workers: gw?.workers ?? [],
      kernels: beats.ok ? kernelIsolationFromBeats(beats.value) : { sandboxed: null, network: "unknown" },
    };
  };
}

export type KernelIsolationReport = ReadinessReport["kernels"];

const UNSANDBOXED_WARNING =
  "Kernels are not sandboxed: code they run can reach the network, this machine's Postgres, Redis, API and Jupyter " +
  "server, other kernels, and read what the Jupyter server's user can. Run as root with bubblewrap, or see SECURITY.md.";

/** What live workers' kernels are promised (from their heartbeats); one unsandboxed worker makes the answer unsandboxed. */
export function kernelIsolationFromBeats(beats: WorkerBeat[]): KernelIsolationReport {
  const seen = beats.flatMap((b) => (b.gateway ? [b.gateway] : []));
  if (seen.length === 0) return { sandboxed: null, network: "unknown" };
  const disk = diskBudgetFromBeats(seen);
  if (seen.some((g) => !g.sandboxed))
    return { sandboxed: false, network: "unrestricted", warning: UNSANDBOXED_WARNING, ...disk };
  return seen.some((g) => g.egress)
    ? { sandboxed: true, network: "allowlist", ...disk }
    : { sandboxed: true, network: "none", ...disk };
}

const NO_DISK_BUDGET_WARNING =
  "Workspaces have no disk budget: one kernel can fill the file system holding DATA_DIR. Put DATA_DIR on btrfs " +
  "with quotas enabled (WORKSPACE_DISK_MB then applies); see SECURITY.md.";

/** The smallest budget any live worker applies; one worker without a budget makes the answer "none". */
function diskBudgetFromBeats(seen: Array<{ diskBudgetMb?: number | null | undefined }>): {
  diskBudgetMb?: number | null;
  diskWarning?: string;
} {
  const known = seen.filter((g) => g.diskBudgetMb !== undefined);
  if (known.length === 0) return {};
  if (known.some((g) => g.diskBudgetMb === null)) return { diskBudgetMb: null, diskWarning: NO_DISK_BUDGET_WARNING };
  return { diskBudgetMb: Math.min(...known.map((g) => g.diskBudgetMb!)) };
}
