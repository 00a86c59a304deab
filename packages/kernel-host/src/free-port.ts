import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { randomInt } from "node:crypto";

const LOWEST = 10_000;
const DEFAULT_EPHEMERAL_START = 32_768;

/** Where Linux starts handing out ports for outgoing connections and listen(0). */
function ephemeralStart(): number {
  try {
    const first = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    return Number.isInteger(first) && first > LOWEST + 1000 ? first : DEFAULT_EPHEMERAL_START;
  } catch {
    return DEFAULT_EPHEMERAL_START;
  }
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

/**
 * A port nothing listens on now, for a server started a moment later (and restarted on it). Chosen below the
 * ephemeral range: a port from listen(0) can be taken meanwhile as the local port of any outgoing connection on
 * the machine, and the server then cannot bind it (Swift's proxy retries for 30 s, and a test waiting for it
 * failed so).
 */
export async function freePort(): Promise<number> {
  const end = ephemeralStart();
  for (let i = 0; i < 200; i++) {
    const port = LOWEST + randomInt(end - LOWEST);
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port between ${LOWEST} and ${end}`);
}
