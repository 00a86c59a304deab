import type { serializeExecution } from "./serialize";

type Body = ReturnType<typeof serializeExecution>;

/**
 * Responses for finished executions, kept for a few seconds per API process: a finished execution no
 * longer changes, except that its file list loses a file when the owner deletes it, and that delete
 * invalidates the entry in every API process (over Redis pub/sub; the TTL bounds a missed message). A
 * client that keeps polling a finished execution, or many clients of one, then costs no database read.
 */
export class FinishedExecutionCache {
  private readonly entries = new Map<string, { userId: string; body: Body; until: number }>();

  constructor(
    private readonly ttlMs = 5000,
    private readonly max = 10_000,
  ) {}

  get(userId: string, id: string): Body | null {
    const e = this.entries.get(id);
    if (!e) return null;
    if (e.until <= Date.now()) {
      this.entries.delete(id);
      return null;
    }
    // Someone else's execution is as absent as a missing one: the route then reads (and finds nothing).
    return e.userId === userId ? e.body : null;
  }

  set(userId: string, id: string, body: Body): void {
    if (this.entries.size >= this.max) {
      // Oldest first: a Map iterates in insertion order.
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(id, { userId, body, until: Date.now() + this.ttlMs });
  }

  invalidate(id: string): void {
    this.entries.delete(id);
  }

  get size(): number {
    return this.entries.size;
  }
}
