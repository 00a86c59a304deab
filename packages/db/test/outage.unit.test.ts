import { describe, expect, it } from "vitest";
import { isOutage } from "@codeinterp/db";

describe("isOutage: Postgres or Redis went away, as opposed to a bug", () => {
  it("knows the codes and messages of pg, Prisma, its driver adapter and ioredis, also when wrapped", () => {
    const downs: unknown[] = [
      Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" }),
      { code: "P1001", message: "Can't reach database server" },
      { code: "P2024", message: "Timed out fetching a new connection from the connection pool" },
      { code: "57P01", message: "terminating connection due to administrator command" },
      { code: "08006", message: "connection failure" },
      new Error("the database system is starting up"),
      new Error("Connection is closed."),
      new Error("Reached the max retries per request limit (which is 20)."),
      new Error("Stream isn't writeable and enableOfflineQueue options is false"),
      new Error("write EPIPE"),
      new Error("Query failed", { cause: { originalCode: "57P03", message: "x" } }),
      { message: "driver error", meta: { driverAdapterError: { cause: { code: "ECONNRESET" } } } },
    ];
    for (const err of downs) expect(isOutage(err), String((err as Error).message)).toBe(true);
  });

  it("is false for errors a retry would not fix", () => {
    const bugs: unknown[] = [
      new TypeError("cannot read properties of undefined"),
      { code: "P2002", message: "Unique constraint failed" },
      { code: "23503", message: "violates foreign key constraint" },
      { code: "22P02", message: "invalid input syntax for type uuid" },
      null,
      undefined,
      "ECONNREFUSED as a bare string is not an error object",
    ];
    for (const err of bugs) expect(isOutage(err)).toBe(false);
  });
});
