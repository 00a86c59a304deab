// Status polling under load (autocannon): a finished execution (cached) and a running one (never cached).
import autocannon from "autocannon";
import { sleep } from "../context";
import type { Json } from "../context";
import { round } from "../stats";
import type { Bench } from "../context";

export async function polling(b: Bench): Promise<void> {
  const { ci, P, results, target, log, msg, apiUrl, key } = b;
  if (!b.lastCompletedId) b.lastCompletedId = (await ci.run({ messageId: msg("poll"), code: "print(1)" })).exec.id;
  const poll: Json = {};
  for (const connections of P.pollConns) {
    log(`polling: autocannon GET /v1/executions/:id, ${connections} connections, ${P.pollSeconds} s`);
    const res = await autocannon({
      url: `${apiUrl}/v1/executions/${b.lastCompletedId}`,
      connections,
      duration: P.pollSeconds,
      headers: { authorization: `Bearer ${key}` },
    });
    poll[`c${connections}`] = {
      connections,
      req_per_s: round(res.requests.average, 0),
      latency_p50_ms: res.latency.p50,
      latency_p99_ms: res.latency.p99,
      latency_max_ms: res.latency.max,
      total: res.requests.total,
      non2xx: res.non2xx,
      errors: res.errors,
      timeouts: res.timeouts,
    };
  }
  // A running execution is never served from the finished-execution cache: every request reads Postgres.
  const running = await ci.submit({
    messageId: msg("poll-running"),
    code: `import time\ntime.sleep(${P.pollSeconds + 30})`,
  });
  for (let i = 0; i < 200 && (await ci.get(running.id)).status !== "running"; i++) await sleep(50);
  log(`polling a running execution: autocannon, ${P.pollConns[0]} connections, ${P.pollSeconds} s`);
  const r = await autocannon({
    url: `${apiUrl}/v1/executions/${running.id}`,
    connections: P.pollConns[0]!,
    duration: P.pollSeconds,
    headers: { authorization: `Bearer ${key}` },
  });
  poll.running = {
    connections: P.pollConns[0],
    req_per_s: round(r.requests.average, 0),
    latency_p50_ms: r.latency.p50,
    latency_p99_ms: r.latency.p99,
    latency_max_ms: r.latency.max,
    total: r.requests.total,
    non2xx: r.non2xx,
    errors: r.errors,
  };
  await fetch(`${apiUrl}/v1/executions/${running.id}/cancel`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}` },
  });
  results.polling = poll;
  const main10 = poll[`c${P.pollConns[0]}`] as { req_per_s: number; latency_p99_ms: number; non2xx: number };
  target(
    "polling ≥ 3,000 req/s",
    "≥ 3000 req/s",
    `${main10.req_per_s} req/s (${P.pollConns[0]} conns)`,
    main10.req_per_s >= 3000 && main10.non2xx === 0,
  );
  target("polling p99 ≤ 25 ms", "≤ 25 ms", `${main10.latency_p99_ms} ms`, main10.latency_p99_ms <= 25);
  const run = poll.running as { req_per_s: number; latency_p99_ms: number };
  log(`polling a running execution (no cache, one read each): ${run.req_per_s} req/s, p99 ${run.latency_p99_ms} ms`);
}
