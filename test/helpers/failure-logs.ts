import path from "node:path";
import { beforeEach, inject } from "vitest";
import { logSizes, printLogsSince, trackLogFile } from "./logs";

// The run's Jupyter server logs here (see global-setup.ts); the stacks of this test file add their own.
trackLogFile(path.join(inject("testRoot"), "logs", "jupyter.log"));

beforeEach((ctx) => {
  const since = logSizes();
  ctx.onTestFailed(() => printLogsSince(since));
});
