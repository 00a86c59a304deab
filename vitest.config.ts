import { defineConfig } from "vitest/config";

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
          testTimeout: 60_000,
          hookTimeout: 120_000,
          pool: "forks",
          maxWorkers: 2,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
