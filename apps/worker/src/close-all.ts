/**
 * Runs every step of a shutdown in order, each even when an earlier one failed (as BullMQ's close does), so
 * one connection that will not close cleanly leaves no other open; then throws what failed, if anything.
 */
export async function closeAll(steps: ReadonlyArray<readonly [name: string, step: () => unknown]>): Promise<void> {
  const failed: Error[] = [];
  for (const [name, step] of steps) {
    try {
      await step();
    } catch (err) {
      failed.push(new Error(`${name}: ${(err as Error).message}`, { cause: err }));
    }
  }
  if (failed.length > 0) throw new AggregateError(failed, `shutdown: ${failed.map((e) => e.message).join("; ")}`);
}
