import { describe, expect, it } from "vitest";
import { closeAll } from "../src/close-all";

describe("closeAll", () => {
  it("runs every step in order even when some fail, then throws naming each failure", async () => {
    const ran: string[] = [];
    const step = (name: string, fail = false) =>
      [
        name,
        async () => {
          ran.push(name);
          if (fail) throw new Error(`${name} would not close`);
        },
      ] as const;
    const closing = closeAll([step("queue"), step("redis", true), step("database"), step("metrics", true)]);
    await expect(closing).rejects.toThrow(/redis: redis would not close; metrics: metrics would not close/);
    expect(ran).toEqual(["queue", "redis", "database", "metrics"]);
  });

  it("resolves when every step closes", async () => {
    let n = 0;
    await closeAll([
      ["a", () => n++],
      ["b", async () => n++],
    ]);
    expect(n).toBe(2);
  });
});
