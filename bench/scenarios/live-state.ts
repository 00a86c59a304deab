// Live messages holding state at once: N users each open a message that loads pandas and ~25 MB of data into
// a variable, then each asks for its variables again. Reported: how many still had them, and the host's
// MemAvailable before, after and at its lowest. The scenario watches MemAvailable and stops opening messages
// below a floor (BENCH_MEM_FLOOR_GIB, default 3), so it cannot take the shared machine down.
import pMap from "p-map";
import type { Bench, Json } from "../context";
import { now, round } from "../stats";
import {
  gib,
  kernelsCgroupUsageFile,
  kernelsMemoryInUse,
  memAvailable,
  settlePool,
  startSampler,
  summarizeSamples,
  timelineColumns,
} from "../system-sampler";
import { createUsers } from "../users";

const GiB = 1024 ** 3;
/** 327,680 rows × 10 float64 columns = 25 MiB. */
const ROWS = 327_680;

const open = (seed: number) => `import numpy as np
import pandas as pd
state = pd.DataFrame(np.random.default_rng(${seed}).random((${ROWS}, 10)))
print("OPENED", round(float(state.values.sum()), 3))
`;

const again = `try:
    print("KEPT", round(float(state.values.sum()), 3))
except NameError:
    print("LOST")
`;

export async function liveState(b: Bench): Promise<void> {
  const n = b.P.liveUsers;
  const floor = Number(process.env.BENCH_MEM_FLOOR_GIB ?? "3") * GiB;
  // Users come and go a few at a time (the worker runs WORKER_CONCURRENCY executions at once anyway).
  const concurrency = 4;
  const deadline = Date.now() + (b.quick ? 300_000 : 900_000);
  const users = await createUsers(b, "live", n);
  await settlePool(b);
  const cgroupFile = await kernelsCgroupUsageFile(b);
  const before = memAvailable();
  const kernelsBefore = kernelsMemoryInUse(cgroupFile);
  let stoppedBelowFloor = false;
  let minSeen = before;
  const watch = setInterval(() => {
    const m = memAvailable();
    minSeen = Math.min(minSeen, m);
    if (m < floor && !stoppedBelowFloor) {
      stoppedBelowFloor = true;
      b.log(`live-state: MemAvailable ${gib(m)} GiB is under the ${gib(floor)} GiB floor: stopping`);
    }
  }, 250);
  const sampler = startSampler(b);
  b.log(`live-state: ${n} users each open a message holding pandas and 25 MiB (MemAvailable ${gib(before)} GiB)`);
  const t0 = now();
  type Msg = { messageId: string; checksum?: string; opened: boolean; kept?: boolean; lost?: boolean; note?: boolean };
  const msgs: Msg[] = users.map(() => ({ messageId: b.msg("live"), opened: false }));
  try {
    await pMap(
      users,
      async (u, i) => {
        if (stoppedBelowFloor || Date.now() > deadline) return;
        const r = await u.ci.runBounded({ messageId: msgs[i]!.messageId, code: open(i) }, deadline);
        const out = r.exec.result?.stdout ?? "";
        if (out.startsWith("OPENED ")) Object.assign(msgs[i]!, { opened: true, checksum: out.slice(7).trim() });
      },
      { concurrency },
    );
    const openedS = (now() - t0) / 1000;
    const held = memAvailable();
    const kernelsHeld = kernelsMemoryInUse(cgroupFile);
    b.log(`live-state: ${msgs.filter((x) => x.opened).length}/${n} opened in ${round(openedS, 1)} s; asking again`);
    await pMap(
      users,
      async (u, i) => {
        const m = msgs[i]!;
        if (!m.opened || stoppedBelowFloor || Date.now() > deadline) return;
        const r = await u.ci.runBounded({ messageId: m.messageId, code: again }, deadline);
        const out = r.exec.result?.stdout ?? "";
        m.kept = out.startsWith("KEPT ") && out.slice(5).trim() === m.checksum;
        m.lost = out.startsWith("LOST");
        m.note = (r.exec.result?.notes ?? []).some((x) => /variables from earlier/.test(x));
      },
      { concurrency },
    );
    const after = memAvailable();
    minSeen = Math.min(minSeen, held, after);
    await sampler.stop();
    const opened = msgs.filter((x) => x.opened).length;
    const kept = msgs.filter((x) => x.kept).length;
    const sys = summarizeSamples(sampler.samples);
    const out: Json = {
      users: n,
      data_per_message_mib: 25,
      opened,
      asked_again: msgs.filter((x) => x.kept !== undefined).length,
      still_had_their_variables: kept,
      lost_their_variables: msgs.filter((x) => x.lost).length,
      told_state_was_reset: msgs.filter((x) => x.note).length,
      stopped_below_memory_floor: stoppedBelowFloor,
      memory_floor_gib: gib(floor),
      mem_available_before_gib: gib(before),
      mem_available_all_opened_gib: gib(held),
      mem_available_after_gib: gib(after),
      mem_available_min_gib: gib(minSeen),
      kernels_memory_in_use_before_gib: gib(kernelsBefore),
      kernels_memory_in_use_all_opened_gib: gib(kernelsHeld),
      kernels_memory_in_use_max_gib: Number.isFinite(kernelsHeld)
        ? Math.max(sys.kernels_memory_in_use_gib?.max ?? 0, gib(kernelsHeld))
        : null,
      open_phase_s: round(openedS, 1),
      total_s: round((now() - t0) / 1000, 1),
      system: sys,
      timeline: timelineColumns(sampler.samples),
    };
    b.results.live_state = out;
    b.results.live_messages_keeping_state = kept;
    b.results.live_state_mem_available_min_gib = gib(minSeen);
    b.log(
      `live-state: ${kept}/${opened} still had their variables; MemAvailable ${gib(before)} → ${gib(held)} (all opened) → ${gib(after)} GiB, min ${gib(minSeen)}; kernels' cgroup ${gib(kernelsBefore)} → ${gib(kernelsHeld)} GiB (max ${sys.kernels_memory_in_use_gib?.max}); ceiling ${sys.ceiling}, evictions ${sys.evictions_during}`,
    );
    b.target(
      `${n} live messages keep pandas + 25 MiB`,
      `${n} kept, ≥ 4 GiB left`,
      `${kept}/${n} kept; MemAvailable min ${gib(minSeen)} GiB`,
      kept === n && minSeen >= 4 * GiB,
    );
  } finally {
    clearInterval(watch);
    await sampler.stop();
  }
}
