import type { ExecutionStatus } from "@codeinterp/client";

export interface Out {
  write(chunk: string): unknown;
}

const FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const LABEL: Record<string, string> = {
  queued: "queued, waiting for a worker",
  preparing: "preparing the workspace and kernel",
  running: "running",
};

/**
 * The status display. On a TTY: one spinner line on stderr that is erased before any output is printed and
 * drawn again after it. Otherwise: one plain line per status change.
 */
export function createProgress(err: Out, opts: { tty: boolean; now?: () => number }) {
  const now = opts.now ?? Date.now;
  const started = now();
  let status: ExecutionStatus | null = null;
  let since = started;
  let frame = 0;
  let shown = false;
  let timer: ReturnType<typeof setInterval> | null = null;

  const line = () => {
    const label = status ? (LABEL[status] ?? status) : "submitting";
    const secs = ((now() - since) / 1000).toFixed(1);
    return `${FRAMES[frame % FRAMES.length]} ${label} ${secs}s`;
  };
  const draw = () => {
    if (!opts.tty || status === null || !(status in LABEL)) return;
    err.write(`\r\u001b[2K${line()}`);
    shown = true;
  };
  const clear = () => {
    if (shown) err.write("\r\u001b[2K");
    shown = false;
  };

  return {
    setStatus(next: ExecutionStatus) {
      if (next === status) return;
      status = next;
      since = now();
      if (!opts.tty) {
        if (next in LABEL) err.write(`[codeinterp] ${next}\n`);
        return;
      }
      if (next in LABEL) {
        timer ??= setInterval(() => {
          frame++;
          draw();
        }, 100);
        draw();
      } else {
        this.stop();
      }
    },
    /** Prints around the progress line. */
    print(target: Out, text: string) {
      clear();
      target.write(text);
      // Only redraw at a line start, or the spinner would split a line the code is printing.
      if (text.endsWith("\n")) draw();
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = null;
      clear();
    },
  };
}
