// What every scenario gets from bench/run.ts: the running stack (API and worker processes, Jupyter server,
// database, gateway), the run's parameters, and the one place figures and targets are recorded.
import type { Db } from "@codeinterp/db";
import type { KernelGateway } from "@codeinterp/kernel";
import type { LocalJupyter } from "@codeinterp/kernel-host";
import type { apiClient } from "./client";
import type { Child } from "./services";
import { round } from "./stats";
import type { Summary } from "./stats";

export type Json = Record<string, unknown>;

export interface Params {
  containmentStartN: number;
  containmentPrintN: number;
  analysisN: number;
  latencyN: number;
  freshN: number;
  firstN: number;
  sseLatencyN: number;
  /** Warm print(1) runs per path in the MCP scenario. */
  mcpN: number;
  throughputTotal: number;
  prepReps: number;
  captureReps: number;
  bigMiB: number;
  pollSeconds: number;
  pollConns: number[];
  sseSubscribers: number;
  /** New messages in the Poisson runs at 0.5/s and at 2/s, and in the burst (all within burstSeconds). */
  arrivalsSlowN: number;
  arrivalsFastN: number;
  burstN: number;
  burstSeconds: number;
  /** Live messages each holding pandas and ~25 MB (bench/scenarios/live-state.ts). */
  liveUsers: number;
}

export const QUICK: Params = {
  containmentStartN: 5,
  containmentPrintN: 50,
  analysisN: 5,
  latencyN: 60,
  freshN: 5,
  firstN: 5,
  sseLatencyN: 10,
  mcpN: 30,
  throughputTotal: 200,
  prepReps: 3,
  captureReps: 1,
  bigMiB: 256,
  pollSeconds: 5,
  pollConns: [10],
  sseSubscribers: 1000,
  arrivalsSlowN: 8,
  arrivalsFastN: 10,
  burstN: 20,
  burstSeconds: 5,
  liveUsers: 20,
};

export const FULL: Params = {
  containmentStartN: 15,
  containmentPrintN: 200,
  analysisN: 12,
  latencyN: 200,
  freshN: 15,
  firstN: 12,
  sseLatencyN: 40,
  mcpN: 100,
  throughputTotal: 200,
  prepReps: 5,
  captureReps: 3,
  bigMiB: 1024,
  pollSeconds: 10,
  pollConns: [10, 50],
  sseSubscribers: 1000,
  arrivalsSlowN: 20,
  arrivalsFastN: 30,
  burstN: 20,
  burstSeconds: 5,
  liveUsers: 100,
};

/** WORKER_CONCURRENCY: the throughput test runs at concurrency equal to the kernel count. */
export const KERNELS = 4;
export const MiB = 1024 * 1024;

export interface Target {
  name: string;
  target: string;
  value: string;
  met: boolean | null;
}

export interface Bench {
  quick: boolean;
  P: Params;
  /** The Jupyter server's root dir (every kernel's working directory is under it). */
  root: string;
  dataDir: string;
  dbName: string;
  /** The environment the API and worker processes were started with. */
  env: Record<string, string>;
  jupyter: LocalJupyter;
  /** The stack's own redis-server (its CPU and commandstats are the stack's alone); null: a shared Redis. */
  redisPid: number | null;
  api: Child;
  worker: Child;
  apiUrl: string;
  key: string;
  adminToken: string;
  ci: ReturnType<typeof apiClient>;
  db: Db;
  gateway: KernelGateway;
  /** Every figure of the run (written with --json). */
  results: Json;
  target(name: string, targetText: string, value: string, met: boolean | null): void;
  log(msg: string): void;
  /** A new message id, tagged for the scenario. */
  msg(tag: string): string;
  /** What the worker recorded with each execution (executions.metrics). */
  metricsOf(ids: string[]): Promise<Map<string, Record<string, number | boolean>>>;
  /**
   * Waits until the worker's pool has `atLeast` (default 1; at most its base size, KERNEL_POOL_SIZE) kernels
   * ready (bounded); returns the wait in ms.
   */
  poolReady(atLeast?: number): Promise<number>;
  /** Kernels ready in the worker's pool now. */
  poolSize(): Promise<number>;
  /** A finished execution earlier scenarios left (the polling scenario reads it); "" when none did. */
  lastCompletedId: string;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A summary with its figures rounded for the JSON. */
export const sum = (s: Summary) => ({
  n: s.n,
  p50: round(s.p50, 2),
  p95: round(s.p95, 2),
  p99: round(s.p99, 2),
  mean: round(s.mean, 2),
  min: round(s.min, 2),
  max: round(s.max, 2),
});
