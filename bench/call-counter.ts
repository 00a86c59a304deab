// Counts, inside a bench child process, what it asks of Postgres and Redis: every statement sent through a
// pg client (Prisma's adapter and the raw-SQL path both end in pg.Client#query) and every command sent by an
// ioredis client (a pipeline's commands and a script call count one each; BullMQ's scripts count once here,
// the commands they run inside Redis are in the server's commandstats). Read by the bench through the
// child's stdin/stdout (bench/child.ts), so per-execution counts need no log parsing.
import pg from "pg";
import IORedis from "ioredis";

export interface CallCounts {
  pgStatements: number;
  /** Statements by their first word (SELECT, UPDATE, BEGIN, ...). */
  pgByVerb: Record<string, number>;
  redisCommands: number;
  redisByCommand: Record<string, number>;
}

const counts: CallCounts = { pgStatements: 0, pgByVerb: {}, redisCommands: 0, redisByCommand: {} };

const bump = (m: Record<string, number>, k: string) => (m[k] = (m[k] ?? 0) + 1);

function verbOf(q: unknown): string {
  const text = typeof q === "string" ? q : ((q as { text?: unknown } | null)?.text ?? "");
  // A WITH ... INSERT is an insert; its verb is the statement's last top-level one, approximated by the first
  // of INSERT/UPDATE/DELETE after the CTEs, else SELECT.
  const t = String(text).trimStart().slice(0, 2000).toUpperCase();
  const first = /^[A-Z]+/.exec(t)?.[0] ?? "?";
  if (first !== "WITH") return first;
  return /\)\s*(INSERT|UPDATE|DELETE|SELECT)\b/.exec(t)?.[1] ?? "WITH";
}

let installed = false;

export function installCallCounter(): void {
  if (installed) return;
  installed = true;
  const query = pg.Client.prototype.query as (...a: unknown[]) => unknown;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    counts.pgStatements++;
    bump(counts.pgByVerb, verbOf(args[0]));
    return query.apply(this, args);
  } as typeof pg.Client.prototype.query;
  const proto = IORedis.prototype as unknown as { sendCommand: (...a: unknown[]) => unknown };
  const send = proto.sendCommand;
  proto.sendCommand = function (this: unknown, ...args: unknown[]) {
    const name = String((args[0] as { name?: unknown } | undefined)?.name ?? "?").toLowerCase();
    counts.redisCommands++;
    bump(counts.redisByCommand, name);
    return send.apply(this, args);
  };
}

export function callCounts(): CallCounts {
  return structuredClone(counts);
}
