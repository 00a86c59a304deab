import { defineConfig } from "vitest/config";

// `npm run test:faults` (= `vitest run --project faults`): each file starts its own private Redis, Postgres,
// Jupyter, API and worker (never the shared ones) and breaks them on purpose; also the 1,000-execution load
// test. It takes minutes, so a plain `vitest run` / `npm test` leaves it out unless asked for by name or with
// CODEINTERP_FAULTS=1. One file at a time: they are CPU-heavy on 2 cores.
const wantFaults = process.env.CODEINTERP_FAULTS === "1" || process.argv.some((a) => /(^|=)faults$/.test(a));
const faultsProject = {
  test: {
    name: "faults",
    include: ["test/faults/**/*.faults.test.ts"],
    environment: "node",
    testTimeout: 180_000,
    hookTimeout: 120_000,
    pool: "forks" as const,
    maxWorkers: 1,
    sequence: { groupOrder: 2 },
  },
};

// `npm run test:cells` (= `vitest run --project cells`): each cell and API instance in its own network namespace
// (test/cells/netns.ts; needs root) with a private Postgres, Redis and S3 server on a bridge. Minutes long, so
// like the faults it runs only when asked for by name or with CODEINTERP_CELLS=1.
const wantCells = process.env.CODEINTERP_CELLS === "1" || process.argv.some((a) => /(^|=)cells$/.test(a));
const cellsProject = {
  test: {
    name: "cells",
    include: ["test/cells/**/*.cells.test.ts"],
    environment: "node",
    testTimeout: 240_000,
    hookTimeout: 240_000,
    pool: "forks" as const,
    maxWorkers: 1,
    sequence: { groupOrder: 3 },
  },
};

// Two projects: fast pure-logic unit tests, and integration tests that talk to the real
// Postgres, Redis and Jupyter server. The machine has 2 cores, so integration files run
// with modest parallelism.
export default defineConfig({
  test: {
    // @jupyterlab/services narrates its websocket life on console.debug; that is noise in test output.
    onConsoleLog: (log, type) => !(type === "stdout" && /^(Starting WebSocket|Kernel: )/.test(log)),
    projects: [
      {
        test: {
          name: "unit",
          include: ["packages/*/test/**/*.unit.test.ts", "apps/*/test/**/*.unit.test.ts", "test/**/*.unit.test.ts"],
          environment: "node",
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: "integration",
          include: ["packages/*/test/**/*.int.test.ts", "apps/*/test/**/*.int.test.ts", "test/**/*.int.test.ts"],
          environment: "node",
          globalSetup: ["test/global-setup.ts"],
          setupFiles: ["test/helpers/failure-logs.ts"],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          pool: "forks",
          maxWorkers: 2,
          sequence: { groupOrder: 1 },
        },
      },
      ...(wantFaults ? [faultsProject] : []),
      ...(wantCells ? [cellsProject] : []),
    ],
  },
});
