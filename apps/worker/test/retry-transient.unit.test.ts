import { createLogger } from "@codeinterp/logger";
import { describe, expect, it } from "vitest";
import { retryTransient } from "../src/jobs/execution/outcome";

const log = createLogger({ name: "test", level: "silent" });
const outage = () => Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });

describe("recording an outcome through an outage", () => {
  it("tries again while Postgres or Redis is away, and succeeds once it is back", async () => {
    let calls = 0;
    const result = await retryTransient(async () => {
      calls++;
      if (calls < 3) throw outage();
      return "recorded";
    }, log);
    expect([result, calls]).toEqual(["recorded", 3]);
  });

  it("does not try again after an error that is not an outage", async () => {
    let calls = 0;
    const bug = new Error("unique constraint failed");
    await expect(
      retryTransient(async () => {
        calls++;
        throw bug;
      }, log),
    ).rejects.toBe(bug);
    expect(calls).toBe(1);
  });
});
