// A warm execution (its message's kernel is alive) is never written as `preparing`: it stays queued while it is
// prepared and goes to running in the one statement before its code is sent (issue 22). On the real stack, with
// every status the executions table is given recorded by a trigger in this file's own database.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createWorkerEvents } from "../src/events";
import { client, startTestStack } from "../../../test/helpers/stack";
import type { TestStack } from "../../../test/helpers/stack";
import { recordEvents } from "./helpers/worker-events";

let stack: TestStack;
let sql: pg.Client;
let api: ReturnType<typeof client>;
const events = createWorkerEvents();
const leases = recordEvents(events, "kernel:leased");

beforeAll(async () => {
  stack = await startTestStack({ events });
  sql = await recordStatusWrites(stack.databaseUrl);
  api = client(stack.url, (await stack.newUser("warm")).key);
}, 60_000);

afterAll(async () => {
  await sql?.end();
  await stack?.close();
});

/** A connection to the stack's database, where a trigger records every status the executions table is given. */
async function recordStatusWrites(databaseUrl: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  await c.query(`
    CREATE TABLE status_writes (seq bigserial PRIMARY KEY, execution_id uuid NOT NULL, status text NOT NULL, kernel_id text);
    CREATE FUNCTION record_status() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO status_writes (execution_id, status, kernel_id) VALUES (NEW.id, NEW.status::text, NEW.kernel_id);
      RETURN NEW;
    END $$;
    CREATE TRIGGER record_status AFTER INSERT OR UPDATE OF status ON executions
      FOR EACH ROW EXECUTE FUNCTION record_status();`);
  return c;
}

/** Every status written for an execution, in order, with the kernel each write named. */
async function writesOf(id: string, c = sql): Promise<Array<{ status: string; kernelId: string | null }>> {
  const { rows } = await c.query<{ status: string; kernel_id: string | null }>(
    "SELECT status, kernel_id FROM status_writes WHERE execution_id = $1 ORDER BY seq",
    [id],
  );
  return rows.map((r) => ({ status: r.status, kernelId: r.kernel_id }));
}

async function submit(messageId: string, code: string): Promise<string> {
  const res = await api.post("/v1/executions", { chatId: "chat-1", messageId, code });
  expect(res.status).toBe(202);
  return res.body.id as string;
}

describe("a warm execution", () => {
  it("goes from queued to running in one write, on the message's kernel; a message's first execution shows preparing", async () => {
    const first = await api.run({ messageId: "m-warm", code: "x = 41" });
    expect(first.status).toBe("completed");
    const second = await api.run({ messageId: "m-warm", code: "print(x + 1)" });
    expect(second.status).toBe("completed");
    expect(second.result.stdout).toBe("42\n");

    const firstWrites = await writesOf(first.id);
    expect(firstWrites.map((w) => w.status)).toEqual(["queued", "preparing", "running", "completed"]);
    const secondWrites = await writesOf(second.id);
    expect(secondWrites.map((w) => w.status)).toEqual(["queued", "running", "completed"]);
    // The one write names the kernel the code ran on: the message's, with its variables.
    expect(secondWrites[1]?.kernelId).toBe(firstWrites[2]?.kernelId);
    const { rows } = await sql.query("SELECT attempts, started_at, worker_id FROM executions WHERE id = $1", [
      second.id,
    ]);
    expect(rows[0]).toMatchObject({ attempts: 1, started_at: expect.any(Date), worker_id: expect.any(String) });
  }, 120_000);

  it("cancelled while it is prepared, is not run, and the message's kernel serves the next execution", async () => {
    expect((await api.run({ messageId: "m-cancel", code: "x = 1" })).status).toBe("completed");
    // The message's turn is held by a running execution, so the next one waits in the queue...
    const busy = await submit("m-cancel", "import time\ntime.sleep(2)");
    await api.waitForStatus(busy, "running");
    const victim = await submit("m-cancel", "ran_victim = True");
    const leasesBefore = leases.seen.length;
    // ...and this transaction holds its row, so once it has the turn its worker waits at the statement that
    // starts it, after the kernel was leased and the workspace prepared: the moment a cancel can come between.
    // (Nothing else writes a queued row, and a read does not wait for a row lock.)
    await sql.query("BEGIN");
    try {
      await sql.query("SELECT 1 FROM executions WHERE id = $1 FOR UPDATE", [victim]);
      await expect
        .poll(
          async () =>
            (
              await sql.query(
                "SELECT count(*)::int AS n FROM pg_stat_activity WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))",
              )
            ).rows[0].n,
          { timeout: 30_000, interval: 50 },
        )
        .toBe(1);
      // The blocked statement came after the message's kernel was leased for it: the start, not a claim.
      expect(leases.seen.slice(leasesBefore).map((l) => l.how)).toEqual(["attached"]);
      // The API's cancel of a queued execution, as its statement does it.
      await sql.query(
        "UPDATE executions SET status = 'cancelled', finished_at = now() WHERE id = $1 AND status = 'queued'",
        [victim],
      );
      await sql.query("COMMIT");
    } catch (err) {
      await sql.query("ROLLBACK");
      throw err;
    }
    const ended = await api.get(`/v1/executions/${victim}`);
    expect(ended.body.status).toBe("cancelled");
    expect((await writesOf(victim)).map((w) => w.status)).toEqual(["queued", "cancelled"]);
    // Its code never reached the kernel, which is still the message's: the next execution finds x, not ran_victim.
    const next = await api.run({ messageId: "m-cancel", code: "print('ran_victim' in globals(), x)" });
    expect(next.status).toBe("completed");
    expect(next.result.stdout).toBe("False 1\n");
  }, 120_000);
});

describe("a follow-up whose message's kernel turned out gone", () => {
  let other: TestStack;
  let otherSql: pg.Client;
  beforeAll(async () => {
    other = await startTestStack({ worker: false });
    otherSql = await recordStatusWrites(other.databaseUrl);
  }, 60_000);
  afterAll(async () => {
    await otherSql?.end();
    await other?.close();
  });

  it("shows preparing before another kernel is taken for it", async () => {
    const user = client(other.url, (await other.newUser("gone")).key);
    const first = await other.startWorker();
    const ran = await user.run({ messageId: "m-gone", code: "x = 1" });
    expect(ran.status).toBe("completed");
    const kernelId = (await writesOf(ran.id, otherSql)).find((w) => w.status === "running")?.kernelId;
    expect(kernelId).toBeTruthy();
    // The follow-up goes to a worker that never used the kernel (this one stops), and the kernel is shut down
    // behind the workers' backs, as an operator or a crash would: the message still maps to it.
    await first.close();
    await other.startWorker();
    const res = await fetch(`${inject("jupyterUrl")}/api/kernels/${kernelId}`, {
      method: "DELETE",
      headers: { authorization: `token ${inject("jupyterToken")}` },
    });
    expect(res.status).toBe(204);
    const next = await user.run({ messageId: "m-gone", code: "print('x' in globals())" });
    expect(next.status).toBe("completed");
    expect(next.result.stdout).toBe("False\n");
    const writes = await writesOf(next.id, otherSql);
    expect(writes.map((w) => w.status)).toEqual(["queued", "preparing", "running", "completed"]);
    expect(writes[2]?.kernelId).not.toBe(kernelId);
  }, 120_000);
});
