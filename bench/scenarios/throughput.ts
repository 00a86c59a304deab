// Throughput: print(1) at concurrency = kernel count, raw kernels vs codeinterp, with CPU per execution.
import os from "node:os";
import { KERNELS } from "../context";
import { expectOk } from "../raw-kernel";
import { hopsOf } from "../hops";
import { describeProfile, profiler } from "../profile";
import { cpuDelta, cpuSnapshot } from "../services";
import { now, round } from "../stats";
import type { Bench } from "../context";

export async function throughput(b: Bench): Promise<void> {
  const { ci, gateway, P, results, target, log, msg, jupyter, api, worker, dbName, quick } = b;
  log(`throughput: ${P.throughputTotal} × print(1) at concurrency ${KERNELS}, raw kernels vs codeinterp`);
  const sessions = await Promise.all(Array.from({ length: KERNELS }, () => gateway.startKernel()));
  for (const s of sessions) await expectOk(s, "print(1)");
  const msgs = Array.from({ length: KERNELS }, () => msg("tput"));
  await Promise.all(msgs.map((m) => ci.run({ messageId: m, code: "print(1)" })));
  const per = Math.ceil(P.throughputTotal / KERNELS);
  const rawRound = async () => {
    const a = now();
    await Promise.all(
      sessions.map(async (s) => {
        for (let i = 0; i < per; i++) await expectOk(s, "print(1)");
      }),
    );
    return (per * KERNELS) / ((now() - a) / 1000);
  };
  const ids: string[] = [];
  const walls: Array<{ submit: number; posted: number; end: number }> = [];
  const ciRound = async () => {
    const a = now();
    await Promise.all(
      msgs.map(async (m) => {
        for (let i = 0; i < per; i++) {
          const r = await ci.run({ messageId: m, code: "print(1)" });
          if (r.exec.status !== "completed") throw new Error(`throughput run ended ${r.exec.status}`);
          ids.push(r.exec.id);
          walls.push(r.wall);
        }
      }),
    );
    return (per * KERNELS) / ((now() - a) / 1000);
  };
  // raw, codeinterp, raw, codeinterp: the better of each pair's rounds is kept. CPU ms per execution of
  // each part of the stack is read from /proc around the first round of each.
  const pids = { api: api.pid, worker: worker.pid, jupyter: jupyter.pid, redis: b.redisPid };
  let c0 = cpuSnapshot(pids, dbName);
  const rawRates = [await rawRound()];
  const rawCpu = cpuDelta(c0, cpuSnapshot(pids, dbName), per * KERNELS);
  c0 = cpuSnapshot(pids, dbName);
  const prof = profiler(b);
  const ciRates = [await prof.around(ciRound)];
  const ciCpu = cpuDelta(c0, cpuSnapshot(pids, dbName), per * KERNELS);
  const ciProfile = prof.result(per * KERNELS);
  prof.close();
  log(describeProfile(`throughput: per print(1) at concurrency ${KERNELS}`, ciProfile));
  const hops = await hopsOf(b.db, b.env.REDIS_URL!, b.env.QUEUE_PREFIX!, ids, walls);
  if (!quick) {
    rawRates.push(await rawRound());
    ciRates.push(await ciRound());
  }
  await Promise.all(sessions.map((s) => s.shutdown()));
  const rawRate = Math.max(...rawRates);
  const ciRate = Math.max(...ciRates);
  results.throughput_ratio = round(ciRate / rawRate, 3);
  results.throughput = {
    kernels: KERNELS,
    executions: per * KERNELS,
    raw_exec_per_s: round(rawRate, 1),
    codeinterp_exec_per_s: round(ciRate, 1),
    raw_rounds: rawRates.map((x) => round(x, 1)),
    codeinterp_rounds: ciRates.map((x) => round(x, 1)),
    cpu_ms_per_execution_raw: rawCpu,
    cpu_ms_per_execution_codeinterp: ciCpu,
    profile_codeinterp: ciProfile,
    hops_codeinterp: hops,
    loadavg_after: os.loadavg().map((x) => round(x, 2)),
  };
  target(
    "throughput ≥ 80% of raw kernels",
    "≥ 0.80",
    `${round(ciRate / rawRate, 3)} (${round(ciRate, 1)} vs ${round(rawRate, 1)} exec/s)`,
    ciRate / rawRate >= 0.8,
  );
}
