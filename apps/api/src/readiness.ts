import type { Db } from "@codeinterp/db";
import { readKernelIsolation } from "@codeinterp/queue";
import type { Redis } from "@codeinterp/queue";
import type { ReadinessCheck } from "./deps";

const within = <T>(p: Promise<T>, ms: number) =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error("timeout")), ms).unref())]);

/** Each dependency gets a short deadline, so /readyz answers promptly even while one of them hangs. */
export function createReadinessCheck(opts: { db: Db; redis: Redis; jupyterUrl?: string | undefined; jupyterToken: string; timeoutMs?: number }): ReadinessCheck {
  const ms = opts.timeoutMs ?? 2000;
  const check = async (fn: () => Promise<unknown>) => {
    try {
      await within(fn(), ms);
      return "ok" as const;
    } catch {
      return "down" as const;
    }
  };
  return async () => {
    const [database, redis, kernelGateway] = await Promise.all([
      check(() => opts.db.$queryRawUnsafe("SELECT 1")),
      check(() => opts.redis.ping()),
      check(async () => {
        if (!opts.jupyterUrl) throw new Error("no kernel gateway configured");
        const res = await fetch(new URL("api", opts.jupyterUrl.endsWith("/") ? opts.jupyterUrl : `${opts.jupyterUrl}/`), {
          headers: opts.jupyterToken ? { authorization: `token ${opts.jupyterToken}` } : {},
          signal: AbortSignal.timeout(ms),
        });
        if (!res.ok) throw new Error(`gateway answered ${res.status}`);
      }),
    ]);
    return { database, redis, kernelGateway };
  };
}

export type KernelIsolationReport =
  | { sandboxed: true; network: "none" }
  | { sandboxed: false; network: "unrestricted"; warning: string }
  | { sandboxed: null; network: "unknown" };

const UNSANDBOXED_WARNING =
  "Kernels are not sandboxed: code they run can reach the network, this machine's Postgres, Redis, API and Jupyter " +
  "server, other kernels, and read what the Jupyter server's user can. Run as root with bubblewrap, or see SECURITY.md.";

/** What running workers' kernels are promised; one unsandboxed worker makes the answer unsandboxed. */
export async function kernelIsolationReport(redis: Redis, prefix: string, timeoutMs = 2000): Promise<KernelIsolationReport> {
  const workers = await within(readKernelIsolation(redis, prefix), timeoutMs).catch(() => null);
  if (!workers || workers.length === 0) return { sandboxed: null, network: "unknown" };
  if (workers.some((w) => !w.sandboxed)) return { sandboxed: false, network: "unrestricted", warning: UNSANDBOXED_WARNING };
  return { sandboxed: true, network: "none" };
}
