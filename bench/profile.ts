// Issue 22: what one execution costs each part of the stack, summed over the executions a scenario wraps
// and divided by their number: CPU ms by process (/proc), Postgres statements and Redis commands sent by
// the API and the worker (counted in each child, bench/call-counter.ts), and the commands the Redis server
// ran (INFO commandstats deltas; with the stack's own redis-server these are exact and include what Lua
// scripts, BullMQ's among them, run inside it). Background work in the window (heartbeats, pollers) is
// included: it is a cost of the path too.
import os from "node:os";
import type { CallCounts } from "./call-counter";
import { createRedis } from "./bench-deps";
import type { Bench } from "./context";
import { cpuSnapshot } from "./services";
import { round } from "./stats";

export interface ExecProfile {
  executions: number;
  /** CPU ms per execution by process; `stack` = API + worker + Postgres + Redis. */
  cpu_ms: Record<string, number>;
  pg_statements: { api: number; worker: number; total: number; by_verb: Record<string, number> };
  redis_commands_sent: { api: number; worker: number; total: number; by_command: Record<string, number> };
  /** Commands the server ran (scripts' inner calls included); null with a shared Redis. */
  redis_commands_run: { total: number; by_command: Record<string, number> } | null;
  loadavg: number[];
}

interface Snap {
  cpu: Record<string, number>;
  api: CallCounts;
  worker: CallCounts;
  server: Record<string, number> | null;
}

function parseCommandStats(info: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

const add = (into: Record<string, number>, a: Record<string, number>, b: Record<string, number>) => {
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) into[k] = (into[k] ?? 0) + (b[k] ?? 0) - (a[k] ?? 0);
};

const perExec = (m: Record<string, number>, n: number, min = 0) =>
  Object.fromEntries(
    Object.entries(m)
      .map(([k, v]) => [k, round(v / n, 2)] as const)
      .filter(([, v]) => Math.abs(v) > min)
      .sort((x, y) => y[1] - x[1]),
  );

export interface Profiler {
  /** Runs `fn` with the counters read before and after it; what happened in between is added up. */
  around<T>(fn: () => Promise<T>): Promise<T>;
  /** The sums so far divided by `executions`. */
  result(executions: number): ExecProfile;
  close(): void;
}

export function profiler(b: Bench): Profiler {
  const pids = { api: b.api.pid, worker: b.worker.pid, jupyter: b.jupyter.pid, redis: b.redisPid };
  const redis = b.redisPid ? createRedis(b.env.REDIS_URL!, { name: "bench-profile" }) : null;
  const cpu: Record<string, number> = {};
  const pg = { api: 0, worker: 0, verbs: {} as Record<string, number> };
  const sent = { api: 0, worker: 0, cmds: {} as Record<string, number> };
  const run: Record<string, number> = {};
  const snap = async (): Promise<Snap> => {
    const [api, worker, info] = await Promise.all([
      b.api.counts(),
      b.worker.counts(),
      redis ? redis.info("commandstats") : Promise.resolve(null),
    ]);
    return { cpu: cpuSnapshot(pids, b.dbName), api, worker, server: info === null ? null : parseCommandStats(info) };
  };
  return {
    async around(fn) {
      const a = await snap();
      try {
        return await fn();
      } finally {
        const z = await snap();
        add(cpu, a.cpu, z.cpu);
        pg.api += z.api.pgStatements - a.api.pgStatements;
        pg.worker += z.worker.pgStatements - a.worker.pgStatements;
        add(pg.verbs, a.api.pgByVerb, z.api.pgByVerb);
        add(pg.verbs, a.worker.pgByVerb, z.worker.pgByVerb);
        sent.api += z.api.redisCommands - a.api.redisCommands;
        sent.worker += z.worker.redisCommands - a.worker.redisCommands;
        add(sent.cmds, a.api.redisByCommand, z.api.redisByCommand);
        add(sent.cmds, a.worker.redisByCommand, z.worker.redisByCommand);
        if (a.server && z.server) add(run, a.server, z.server);
      }
    },
    result(n) {
      const c = perExec(cpu, n);
      const stack = (c.api ?? 0) + (c.worker ?? 0) + (c.postgres_bench_db ?? 0) + (c.redis_server ?? 0);
      // The profiler's own INFO calls are not the stack's.
      const ran = { ...run };
      delete ran.info;
      const ranTotal = Object.values(ran).reduce((x, y) => x + y, 0);
      return {
        executions: n,
        cpu_ms: { ...c, stack: round(stack, 2) },
        pg_statements: {
          api: round(pg.api / n, 2),
          worker: round(pg.worker / n, 2),
          total: round((pg.api + pg.worker) / n, 2),
          by_verb: perExec(pg.verbs, n, 0.005),
        },
        redis_commands_sent: {
          api: round(sent.api / n, 2),
          worker: round(sent.worker / n, 2),
          total: round((sent.api + sent.worker) / n, 2),
          by_command: perExec(sent.cmds, n, 0.005),
        },
        redis_commands_run: redis ? { total: round(ranTotal / n, 2), by_command: perExec(ran, n, 0.005) } : null,
        loadavg: os.loadavg().map((x) => round(x, 2)),
      };
    },
    close() {
      redis?.disconnect();
    },
  };
}

/** One line for the log and the summary. */
export function describeProfile(label: string, p: ExecProfile): string {
  const cpu = p.cpu_ms;
  return (
    `${label} (n=${p.executions}): pg statements ${p.pg_statements.total} (api ${p.pg_statements.api}, worker ${p.pg_statements.worker}); ` +
    `redis commands sent ${p.redis_commands_sent.total} (api ${p.redis_commands_sent.api}, worker ${p.redis_commands_sent.worker})` +
    (p.redis_commands_run ? `, run by the server ${p.redis_commands_run.total}` : "") +
    `; CPU ms api ${cpu.api ?? 0} + worker ${cpu.worker ?? 0} + pg ${cpu.postgres_bench_db ?? 0} + redis ${cpu.redis_server ?? 0} = ${cpu.stack} (jupyter+kernel ${cpu.jupyter_and_kernels ?? 0})`
  );
}
