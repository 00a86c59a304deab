// Latency of print(1): raw kernels vs codeinterp's warm path (long-poll and SSE), a fresh kernel per
// execution, Open WebUI's Jupyter flow, and the first execution of a new message; where the warm time goes.
import { sum } from "../context";
import { hopsOf } from "../hops";
import { describeProfile, profiler } from "../profile";
import { openWebUiRoundTrip } from "../jupyter-surface";
import { PAUSE_MS, pausedPrints } from "../paused";
import { expectOk, rawConnection } from "../raw-kernel";
import { median, now, round, summarize } from "../stats";
import type { Bench } from "../context";

export async function latency(b: Bench): Promise<void> {
  const { ci, db, gateway, env, P, results, target, log, msg, metricsOf, poolReady, apiUrl, key, jupyter } = b;
  log("latency: raw kernel (gateway session and direct KernelConnection) vs codeinterp warm path");
  const rawSession = await gateway.startKernel();
  const raw = await rawConnection(jupyter.url, jupyter.token);
  const warmMsg = msg("warm");
  const first = await ci.run({ messageId: warmMsg, code: "print(1)" });
  if (first.exec.status !== "completed" || first.exec.result?.stdout !== "1\n")
    throw new Error(`print(1) gave ${JSON.stringify(first.exec)}`);
  for (let i = 0; i < 10; i++) {
    await expectOk(rawSession, "print(1)");
    await raw.run("print(1)");
    await ci.run({ messageId: warmMsg, code: "print(1)" });
  }
  const rawMs: number[] = [];
  const jlsMs: number[] = [];
  const e2eMs: number[] = [];
  const e2eIds: string[] = [];
  const e2eWall: Array<{ submit: number; posted: number; end: number }> = [];
  // The same code submitted and waited for in one request (POST ?waitMs).
  const oneMs: number[] = [];
  const oneIds: string[] = [];
  const oneWall: Array<{ submit: number; posted: number; end: number }> = [];
  // Interleaved in blocks so that a noisy moment hits all four paths alike.
  const block = 20;
  for (let done = 0; done < P.latencyN; done += block) {
    for (let i = 0; i < block; i++) {
      const a = now();
      await expectOk(rawSession, "print(1)");
      rawMs.push(now() - a);
    }
    for (let i = 0; i < block; i++) {
      const a = now();
      const out = await raw.run("print(1)");
      jlsMs.push(now() - a);
      if (out !== "1\n") throw new Error(`raw print(1) gave ${JSON.stringify(out)}`);
    }
    for (let i = 0; i < block; i++) {
      const r = await ci.run({ messageId: warmMsg, code: "print(1)" });
      if (r.exec.status !== "completed") throw new Error(`warm run ended ${r.exec.status}`);
      e2eMs.push(r.ms);
      e2eIds.push(r.exec.id);
      e2eWall.push(r.wall);
    }
    for (let i = 0; i < block; i++) {
      const r = await ci.runWaiting({ messageId: warmMsg, code: "print(1)" });
      if (r.exec.status !== "completed") throw new Error(`warm run ended ${r.exec.status}`);
      oneMs.push(r.ms);
      oneIds.push(r.exec.id);
      oneWall.push(r.wall);
    }
  }
  // Follow-ups as users send them, after a pause (bench/paused.ts); at least 20: single samples after a pause
  // move by tens of ms on this VM.
  const paused = { raw: [] as number[], oneRequest: [] as number[] };
  await pausedPrints(rawSession, ci, warmMsg, Math.max(20, P.sseLatencyN), paused, "warm");
  b.lastCompletedId = e2eIds[e2eIds.length - 1]!;
  await rawSession.shutdown();
  await raw.close();

  // stage breakdown of the warm executions, from executions.metrics
  const m = await metricsOf(e2eIds);
  const stage = (k: string) => summarize(e2eIds.map((id) => Number(m.get(id)?.[k] ?? NaN)).filter(Number.isFinite));
  const known = ["queueWaitMs", "prepareMs", "kernelAcquireMs", "runMs", "captureMs"];
  const other = e2eIds.map((id, i) => e2eMs[i]! - known.reduce((acc, k) => acc + Number(m.get(id)?.[k] ?? 0), 0));
  const reusedShare = e2eIds.filter((id) => m.get(id)?.reusedKernel === true).length / e2eIds.length;

  // Timeline of each warm execution (ms, wall clock of this machine): client timestamps, the rows'
  // createdAt/startedAt/finishedAt, and the Redis stream ids of the worker's events (they are ms times).
  const timeline = await hopsOf(db, env.REDIS_URL!, env.QUEUE_PREFIX!, e2eIds, e2eWall);
  const oneTimeline = await hopsOf(db, env.REDIS_URL!, env.QUEUE_PREFIX!, oneIds, oneWall);

  // What one warm print(1) costs each process, in statements, commands and CPU (sequential, nothing else
  // running): the figures a regression of the warm path shows up in.
  const prof = profiler(b);
  const profN = P.latencyN;
  await prof.around(async () => {
    for (let i = 0; i < profN; i++) {
      const r = await ci.run({ messageId: warmMsg, code: "print(1)" });
      if (r.exec.status !== "completed") throw new Error(`warm run ended ${r.exec.status}`);
    }
  });
  const warmProfile = prof.result(profN);
  prof.close();
  log(describeProfile("latency: per warm print(1)", warmProfile));
  const oneProf = profiler(b);
  await oneProf.around(async () => {
    for (let i = 0; i < profN; i++) {
      const r = await ci.runWaiting({ messageId: warmMsg, code: "print(1)" });
      if (r.exec.status !== "completed") throw new Error(`warm run ended ${r.exec.status}`);
    }
  });
  const oneProfile = oneProf.result(profN);
  oneProf.close();
  log(describeProfile("latency: per warm print(1), submitted and waited for in one request", oneProfile));

  // SSE e2e: submit, then follow /events to done
  const sseMs: number[] = [];
  for (let i = 0; i < P.sseLatencyN; i++) {
    const r = await ci.runSse({ messageId: warmMsg, code: "print(1)" });
    if (!r.done) throw new Error("SSE run did not get done");
    sseMs.push(r.ms);
  }

  // fresh kernel per execution, the Open WebUI way: start, run, shut down, every time
  log("latency: fresh kernel per execution");
  const freshMs: number[] = [];
  const freshToResultMs: number[] = [];
  for (let i = 0; i < P.freshN; i++) {
    const a = now();
    const s = await gateway.startKernel();
    await expectOk(s, "print(1)");
    freshToResultMs.push(now() - a);
    await s.shutdown();
    freshMs.push(now() - a);
  }

  // Open WebUI's own Jupyter client flow (new kernel, websocket, execute, DELETE), same client code against
  // the stock Jupyter server and against codeinterp's /jupyter surface (a new message, a pooled kernel).
  log("latency: Open WebUI's Jupyter flow, stock Jupyter vs codeinterp /jupyter");
  const owuiStockMs: number[] = [];
  const owuiCiMs: number[] = [];
  for (let i = 0; i < P.freshN; i++) {
    const stock = await openWebUiRoundTrip(jupyter.url, jupyter.token, "print(1)");
    if (stock.stdout !== "1\n") throw new Error(`stock Jupyter print(1) gave ${JSON.stringify(stock.stdout)}`);
    owuiStockMs.push(stock.untilIdleMs);
    await poolReady(); // the pool refills between chat messages
    const viaCi = await openWebUiRoundTrip(`${apiUrl}/jupyter`, key, "print(1)");
    if (viaCi.stdout !== "1\n") throw new Error(`/jupyter print(1) gave ${JSON.stringify(viaCi.stdout)}`);
    owuiCiMs.push(viaCi.untilIdleMs);
  }

  // first execution of a new message: pooled kernel (KERNEL_POOL_SIZE=2)
  log("latency: first execution of a new message (pooled kernel)");
  const firstMs: number[] = [];
  const firstIds: string[] = [];
  const firstPoolWaits: number[] = [];
  for (let i = 0; i < P.firstN; i++) {
    firstPoolWaits.push(await poolReady()); // the pool refills between chat messages
    const r = await ci.run({ messageId: msg("first"), code: "print(1)" });
    firstMs.push(r.ms);
    firstIds.push(r.exec.id);
  }
  const fm = await metricsOf(firstIds);
  // Which kernelspecs the server's kernels run now (the worker's message and pool kernels): shows whether
  // codeinterp's kernels were the sandboxed ones (codeinterp-sandbox) or plain python3.
  const kernelspecsInUse: Record<string, number> = {};
  for (const k of await gateway.listKernels()) kernelspecsInUse[k.name] = (kernelspecsInUse[k.name] ?? 0) + 1;
  const pooledFirst = firstIds.map((id, i) => ({
    ms: firstMs[i]!,
    pooled: fm.get(id)?.pooledKernel === true,
    acquire: Number(fm.get(id)?.kernelAcquireMs ?? NaN),
  }));
  const pooledOnly = pooledFirst.filter((x) => x.pooled).map((x) => x.ms);

  const e2e = summarize(e2eMs);
  const one = summarize(oneMs);
  const rawS = summarize(rawMs);
  const pausedRaw = summarize(paused.raw);
  const pausedOne = summarize(paused.oneRequest);
  log(
    `latency: after ${PAUSE_MS} ms idle, print(1) p50 ${round(pausedOne.p50, 1)} ms in one request vs raw ` +
      `${round(pausedRaw.p50, 1)} ms (back to back: ${round(one.p50, 1)} vs ${round(rawS.p50, 1)})`,
  );
  const jls = summarize(jlsMs);
  const fresh = summarize(freshMs);
  results.e2e_p50_ms = round(e2e.p50, 2);
  results.e2e_p95_ms = round(e2e.p95, 2);
  results.raw_kernel_p50_ms = round(rawS.p50, 2);
  results.fresh_kernel_p50_ms = round(fresh.p50, 2);
  results.latency = {
    e2e_warm_longpoll: sum(e2e),
    e2e_warm_submit_and_wait: sum(one),
    e2e_warm_sse: sum(summarize(sseMs)),
    e2e_warm_submit_and_wait_after_pause: sum(pausedOne),
    raw_kernel_gateway_session: sum(rawS),
    raw_kernel_after_pause: sum(pausedRaw),
    raw_kernel_jupyterlab_services: sum(jls),
    fresh_kernel_per_execution: sum(fresh),
    fresh_kernel_until_result: sum(summarize(freshToResultMs)),
    first_execution_new_message: sum(summarize(firstMs)),
    openwebui_flow_stock_jupyter: sum(summarize(owuiStockMs)),
    openwebui_flow_codeinterp_jupyter_surface: sum(summarize(owuiCiMs)),
    first_execution_new_message_pooled_only: sum(summarize(pooledOnly)),
    first_execution_pooled_share: round(pooledOnly.length / firstMs.length, 2),
    first_execution_wait_for_a_ready_pool_kernel: sum(summarize(firstPoolWaits)),
    first_execution_kernel_acquire_p50_ms: round(median(pooledFirst.map((x) => x.acquire)), 2),
    warm_reused_kernel_share: round(reusedShare, 2),
    kernelspecs_in_use_after: kernelspecsInUse,
    ratio_e2e_over_raw: round(e2e.p50 / rawS.p50, 2),
    overhead_e2e_minus_raw_p50_ms: round(e2e.p50 - rawS.p50, 2),
    overhead_submit_and_wait_minus_raw_p50_ms: round(one.p50 - rawS.p50, 2),
    overhead_after_pause_minus_raw_p50_ms: round(pausedOne.p50 - pausedRaw.p50, 2),
    ratio_fresh_over_e2e: round(fresh.p50 / e2e.p50, 1),
    timeline_warm_p50_ms: timeline,
    timeline_warm_submit_and_wait_p50_ms: oneTimeline,
    profile_warm: warmProfile,
    profile_warm_submit_and_wait: oneProfile,
    stages_warm_p50_ms: {
      queueWaitMs: round(stage("queueWaitMs").p50, 2),
      prepareMs: round(stage("prepareMs").p50, 2),
      kernelAcquireMs: round(stage("kernelAcquireMs").p50, 2),
      runMs: round(stage("runMs").p50, 2),
      captureMs: round(stage("captureMs").p50, 2),
      unaccounted_api_db_redis_ms: round(median(other), 2),
    },
    stages_warm_p95_ms: {
      queueWaitMs: round(stage("queueWaitMs").p95, 2),
      prepareMs: round(stage("prepareMs").p95, 2),
      kernelAcquireMs: round(stage("kernelAcquireMs").p95, 2),
      runMs: round(stage("runMs").p95, 2),
      captureMs: round(stage("captureMs").p95, 2),
      unaccounted_api_db_redis_ms: round(summarize(other).p95, 2),
    },
  };
  target(
    "e2e p50 ≤ raw p50 + 10 ms",
    `≤ ${round(rawS.p50 + 10, 1)} ms`,
    `${round(e2e.p50, 1)} ms (raw ${round(rawS.p50, 1)})`,
    e2e.p50 <= rawS.p50 + 10,
  );
  target(
    "e2e p50 ≤ raw p50 + 10 ms, submitted and waited for in one request",
    `≤ ${round(rawS.p50 + 10, 1)} ms`,
    `${round(one.p50, 1)} ms (raw ${round(rawS.p50, 1)})`,
    one.p50 <= rawS.p50 + 10,
  );
  target("≥ 25× faster than fresh kernel", "≥ 25×", `${round(fresh.p50 / e2e.p50, 1)}×`, fresh.p50 / e2e.p50 >= 25);
}
