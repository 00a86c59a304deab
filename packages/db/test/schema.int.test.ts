import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import path from "node:path";
import { repoRoot } from "@codeinterp/config";
import { createDb, migrate } from "@codeinterp/db";
import type { Db } from "@codeinterp/db";
import { createTestDatabase } from "../../../test/helpers/database";

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let db: Db;

beforeAll(async () => {
  database = await createTestDatabase();
  db = createDb({ url: database.url });
});
afterAll(async () => {
  await db?.$disconnect();
  await database?.drop();
});

describe("the migrated database matches the Prisma schema", () => {
  it("every model is written and read back through the client", async () => {
    const user = await db.user.create({ data: { id: "schema-user" } });
    const key = await db.apiKey.create({ data: { userId: user.id, keyHash: "h".repeat(64), prefix: "ci_abcd" } });
    const upload = await db.file.create({
      data: {
        userId: user.id,
        name: "a.csv",
        size: 3n,
        sha256: "0".repeat(64),
        mimeType: "text/csv",
        storageKey: "0".repeat(64),
        source: "upload",
      },
    });
    const exec = await db.execution.create({
      data: {
        userId: user.id,
        chatId: "c",
        messageId: "m",
        code: "print(1)",
        codeSha256: "1".repeat(64),
        timeoutMs: 1000,
        idempotencyKey: "k",
        result: { stdout: "1\n", outputs: [] },
        failure: { code: "x", message: "y" },
        metrics: { runMs: 3 },
      },
    });
    await db.messageAttachment.create({ data: { userId: user.id, messageId: "m", fileId: upload.id, position: 0 } });
    const generated = await db.file.create({
      data: {
        userId: user.id,
        name: "a.csv",
        size: 5n,
        sha256: "2".repeat(64),
        mimeType: "text/csv",
        storageKey: "2".repeat(64),
        source: "generated",
        chatId: "c",
        messageId: "m",
        executionId: exec.id,
        path: "a.csv",
        derivedFromId: upload.id,
      },
    });

    const read = await db.user.findUniqueOrThrow({
      where: { id: user.id },
      include: {
        apiKeys: true,
        executions: { include: { files: true } },
        files: { include: { derivedFrom: true, attachments: true } },
      },
    });
    expect(read.apiKeys.map((k) => k.id)).toEqual([key.id]);
    expect(read.executions[0]?.status).toBe("queued");
    expect(read.executions[0]?.result).toEqual({ stdout: "1\n", outputs: [] });
    expect(read.executions[0]?.files.map((f) => f.id)).toEqual([generated.id]);
    const gen = read.files.find((f) => f.id === generated.id);
    expect(gen?.derivedFrom?.id).toBe(upload.id);
    expect(gen?.size).toBe(5n);
    expect(read.files.find((f) => f.id === upload.id)?.attachments).toHaveLength(1);
  });

  it("enforces one registration per (execution, path) and one idempotency key per user", async () => {
    const exec = await db.execution.findFirstOrThrow({ where: { userId: "schema-user" } });
    await expect(
      db.file.create({
        data: {
          userId: "schema-user",
          name: "a.csv",
          size: 1n,
          sha256: "3".repeat(64),
          mimeType: "text/csv",
          storageKey: "3".repeat(64),
          source: "generated",
          executionId: exec.id,
          path: "a.csv",
        },
      }),
    ).rejects.toMatchObject({ code: "P2002" });
    await expect(
      db.execution.create({
        data: {
          userId: "schema-user",
          chatId: "c",
          messageId: "m2",
          code: "",
          codeSha256: "",
          timeoutMs: 1,
          idempotencyKey: "k",
        },
      }),
    ).rejects.toMatchObject({ code: "P2002" });
  });

  it("migrating again applies nothing and records Prisma's bookkeeping", async () => {
    const again = await migrate({ url: database.url, migrationsDir: path.join(repoRoot, "prisma/migrations") });
    expect(again.applied).toEqual([]);
    const c = new pg.Client({ connectionString: database.url });
    await c.connect();
    const rows = await c.query(`SELECT migration_name, checksum, finished_at FROM "_prisma_migrations"`);
    await c.end();
    expect(rows.rows.length).toBeGreaterThan(0);
    for (const r of rows.rows) {
      expect(r.checksum).toMatch(/^[0-9a-f]{64}$/);
      expect(r.finished_at).not.toBeNull();
    }
  });
});
