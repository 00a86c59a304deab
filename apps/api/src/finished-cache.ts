import { LRUCache } from "lru-cache";
import type { serializeExecution } from "./serialize";

type Body = ReturnType<typeof serializeExecution>;

/**
 * Responses for finished executions, kept for a few seconds per API process: a finished execution no
 * longer changes, except that its file list loses a file when the owner deletes it, and that delete
 * invalidates the entry in every API process (over Redis pub/sub; the TTL bounds a missed message). A
 * client that keeps polling a finished execution, or many clients of one, then costs no database read.
 */
export class FinishedExecutionCache {
  private readonly entries: LRUCache<string, { userId: string; body: Body }>;

  constructor(ttlMs = 5000, max = 10_000) {
    this.entries = new LRUCache({ max, ttl: ttlMs, ttlAutopurge: false });
  }

  get(userId: string, id: string): Body | null {
    const e = this.entries.get(id);
    // Someone else's execution is as absent as a missing one: the route then reads (and finds nothing).
    return e && e.userId === userId ? e.body : null;
  }

  set(userId: string, id: string, body: Body): void {
    this.entries.set(id, { userId, body });
  }

  invalidate(id: string): void {
    this.entries.delete(id);
  }

  get size(): number {
    return this.entries.size;
  }
}
