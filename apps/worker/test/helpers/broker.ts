import { randomBytes } from "node:crypto";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { inject } from "vitest";
import { createKernelGateway, remoteKernelHost } from "@codeinterp/kernel";
import type { KernelGateway } from "@codeinterp/kernel";
import { createLogger } from "@codeinterp/logger";
import { createRedis } from "@codeinterp/queue";
import type { Redis } from "@codeinterp/queue";
import { createWorkerEvents } from "../../src/events";
import { kernelRequestFor } from "../../src/jobs/run-execution";
import type { KernelBroker, KernelLease, LeaseRequest, MessageTurn } from "../../src/kernels/broker";
import { createLiveKernels } from "../../src/kernels/live-kernels";
import { MessageKernelBroker } from "../../src/kernels/message-broker";
import { WorkspaceLayout } from "../../src/workspace-layout";
import { testRedisUrl } from "../../../../test/helpers/redis";

/**
 * Brokers on the real Redis and the run's real Jupyter server (plain, unsandboxed kernels), each on a queue
 * prefix of its own. `open` once per file (beforeAll), `closeBrokers` after each test, `close` at the end.
 */
export function brokerFixture(name: string) {
  const log = createLogger({ name, level: "silent" });
  let redis!: Redis;
  let gateway!: KernelGateway;
  let layout!: WorkspaceLayout;
  let dataDir = "";
  const brokers: MessageKernelBroker[] = [];

  return {
    get redis() {
      return redis;
    },
    async open() {
      redis = createRedis(testRedisUrl, { name });
      gateway = createKernelGateway({
        baseUrl: inject("jupyterUrl"),
        token: inject("jupyterToken"),
        log,
        kernelName: "python3",
        host: remoteKernelHost,
      });
      dataDir = path.join(inject("testRoot"), `${name}-${randomBytes(4).toString("hex")}`);
      await mkdir(dataDir, { recursive: true });
      layout = new WorkspaceLayout(false, dataDir, inject("testRoot"));
    },
    async closeBrokers() {
      await Promise.all(brokers.splice(0).map((b) => b.close()));
    },
    close() {
      redis?.disconnect();
    },
    newBroker(
      opts: {
        max?: number;
        idleTtlMs?: number;
        poolSize?: number;
        poolEvictionIdleMs?: number;
        workerId?: string;
        prefix?: string;
        /** The cell whose kernels the broker keeps (cellKeyPrefix); default: none, the queue prefix. */
        cellPrefix?: string;
      } = {},
    ) {
      const prefix = opts.prefix ?? `citest-${name}-${randomBytes(5).toString("hex")}`;
      const live = createLiveKernels({ redis, prefix, max: opts.max ?? 10 });
      const events = createWorkerEvents();
      const broker = new MessageKernelBroker({
        gateway,
        redis,
        prefix,
        workerId: opts.workerId ?? "w1",
        log,
        poolSize: opts.poolSize ?? 0,
        layout,
        idleTtlMs: opts.idleTtlMs ?? 60_000,
        live,
        events,
        sweepIntervalMs: 3_600_000,
        // The count ceiling's rules: any idle kernel may make room at once (a-conversation-in-progress
        // protection is tested in kernel-ceiling.int.test.ts).
        evictionProtectMs: 0,
        ...(opts.poolEvictionIdleMs !== undefined ? { poolEvictionIdleMs: opts.poolEvictionIdleMs } : {}),
        ...(opts.cellPrefix !== undefined ? { cellPrefix: opts.cellPrefix } : {}),
      });
      brokers.push(broker);
      return { broker, live, prefix, events };
    },
    /** A new message of user "u": its kernel identity as the worker derives it. */
    request(): LeaseRequest {
      return kernelRequestFor({ DATA_DIR: dataDir }, layout, "u", `m-${randomBytes(4).toString("hex")}`);
    },
    exists: (id: string) => gateway.hasKernel(id),
    gateway: () => gateway,
  };
}

/**
 * One execution's use of a kernel, as the job does it: the turn held around lease, ready and release.
 * `keepTurn`: the turn and lease are returned held, for the caller to end.
 */
export async function use(broker: KernelBroker, req: LeaseRequest, code = "pass", keepTurn = false) {
  const turn = await broker.takeTurn(req.messageKey);
  let lease: KernelLease;
  try {
    lease = await broker.lease(turn, req);
  } catch (err) {
    await turn.release();
    throw err;
  }
  const session = await lease.ready();
  const out = await session.execute(code, { timeoutMs: 10_000 });
  if (keepTurn) return { lease, out, turn: turn as MessageTurn | null };
  await lease.release();
  await turn.release();
  return { lease, out, turn: null as MessageTurn | null };
}
