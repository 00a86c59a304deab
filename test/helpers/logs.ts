import { closeSync, openSync, readSync, statSync, writeSync } from "node:fs";

/**
 * Test stacks log to files (never to the test output); when a test fails, what each of this file's logs
 * recorded during that test is printed with the failure, so a failure seen once in CI can be explained.
 */
const tracked = new Set<string>();

/** An append-only log file, as a pino destination (synchronous, so nothing is lost when a test fails). */
export function openLogFile(file: string): { fd: number; stream: { write(line: string): void }; close(): void } {
  const fd = openSync(file, "a");
  tracked.add(file);
  let open = true;
  return {
    fd,
    // Something still finishing after the stack closed may log once more: that line is dropped.
    stream: { write: (line: string) => void (open && writeSync(fd, line)) },
    close: () => {
      open = false;
      closeSync(fd);
    },
  };
}

export function trackLogFile(file: string): void {
  tracked.add(file);
}

/** How long each tracked log is now. */
export function logSizes(): Map<string, number> {
  return new Map([...tracked].map((f) => [f, sizeOf(f)]));
}

/** Prints, for each tracked log, the lines written since `since` (the last `maxLines` of them). */
export function printLogsSince(since: Map<string, number>, maxLines = 200): void {
  for (const file of tracked) {
    const from = since.get(file) ?? 0;
    const size = sizeOf(file);
    if (size <= from) continue;
    const text = read(file, from, size - from);
    const lines = text.split("\n").filter(Boolean);
    const shown = lines.slice(-maxLines);
    console.error(
      `--- ${file}: ${lines.length} line(s) logged during the failed test${shown.length < lines.length ? `, last ${shown.length}` : ""} ---\n${shown.join("\n")}`,
    );
  }
}

function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

function read(file: string, offset: number, length: number): string {
  const fd = openSync(file, "r");
  try {
    const buf = Buffer.alloc(Math.min(length, 4 * 1024 * 1024));
    const start = offset + Math.max(0, length - buf.length);
    const n = readSync(fd, buf, 0, buf.length, start);
    return buf.subarray(0, n).toString("utf8");
  } finally {
    closeSync(fd);
  }
}
