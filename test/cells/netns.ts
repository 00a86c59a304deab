import { spawnSync } from "node:child_process";
import { randomInt } from "node:crypto";

/**
 * Separate machines on this box: each node (a cell, an API instance) is a network namespace with its own
 * loopback and one veth link to a bridge in the root namespace, on a private /24 that exists on this machine
 * only. The bridge address is where the shared services (Postgres, Redis, the S3 server) listen; nodes see
 * each other and those, nothing else (no route out). Needs root. Every name starts with NAME_PREFIX so a run
 * cut short is cleaned up by the next one.
 */

const NAME_PREFIX = "cic";

function ip(...args: string[]): string {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.trim()}`);
  return r.stdout;
}

export interface NetNode {
  name: string;
  /** The namespace's name, for `ip netns exec`. */
  ns: string;
  /** Its address on the bridge. */
  ip: string;
  /** The command line prefix that runs a program inside the namespace. */
  wrap(cmd: string, args: string[]): { cmd: string; args: string[] };
  /** Every process in the namespace (what runs on that "machine"). */
  pids(): number[];
  /** Sends `signal` to every process in the namespace. */
  signalAll(signal: NodeJS.Signals): number;
}

export interface Network {
  bridgeIp: string;
  addNode(name: string): NetNode;
  /** Kills whatever still runs in the namespaces, deletes them and the bridge. Safe to call twice. */
  destroy(): void;
}

/** Deletes namespaces and bridges a previous run left (it was killed before its cleanup). */
export function removeLeftovers(): void {
  for (const line of ip("netns", "list").split("\n")) {
    const ns = line.split(" ")[0];
    if (ns?.startsWith(`${NAME_PREFIX}-`)) removeNamespace(ns);
  }
  for (const line of ip("-o", "link", "show", "type", "bridge").split("\n")) {
    const dev = /^\d+: ([^:@]+)/.exec(line)?.[1];
    if (dev?.startsWith(`${NAME_PREFIX}br`)) spawnSync("ip", ["link", "del", dev]);
  }
}

function namespacePids(ns: string): number[] {
  const r = spawnSync("ip", ["netns", "pids", ns], { encoding: "utf8" });
  return r.stdout
    .split("\n")
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
}

function removeNamespace(ns: string): void {
  for (const pid of namespacePids(ns)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  spawnSync("ip", ["netns", "del", ns]);
}

export function createNetwork(): Network {
  if (process.getuid?.() !== 0) throw new Error("the cells suite needs root (network namespaces)");
  const run = randomInt(1000, 9999);
  const subnet = `10.${randomInt(200, 250)}.${randomInt(0, 255)}`;
  const bridge = `${NAME_PREFIX}br${run}`;
  const bridgeIp = `${subnet}.1`;
  const nodes: NetNode[] = [];
  ip("link", "add", bridge, "type", "bridge");
  ip("addr", "add", `${bridgeIp}/24`, "dev", bridge);
  ip("link", "set", bridge, "up");
  let destroyed = false;
  return {
    bridgeIp,
    addNode(name: string): NetNode {
      const n = nodes.length + 1;
      const ns = `${NAME_PREFIX}-${run}-${name}`;
      const hostEnd = `${NAME_PREFIX}${run}h${n}`;
      const nodeEnd = `${NAME_PREFIX}${run}n${n}`;
      const addr = `${subnet}.${10 + n}`;
      ip("netns", "add", ns);
      ip("link", "add", hostEnd, "type", "veth", "peer", "name", nodeEnd);
      ip("link", "set", hostEnd, "master", bridge, "up");
      ip("link", "set", nodeEnd, "netns", ns);
      ip("-n", ns, "addr", "add", `${addr}/24`, "dev", nodeEnd);
      ip("-n", ns, "link", "set", nodeEnd, "up");
      ip("-n", ns, "link", "set", "lo", "up");
      const node: NetNode = {
        name,
        ns,
        ip: addr,
        // nsenter switches the network namespace only: `ip netns exec` also remounts /sys, hiding the cgroup tree.
        wrap: (cmd, args) => ({ cmd: "nsenter", args: [`--net=/run/netns/${ns}`, "--", cmd, ...args] }),
        pids: () => namespacePids(ns),
        signalAll(signal) {
          let n = 0;
          for (const pid of namespacePids(ns)) {
            try {
              process.kill(pid, signal);
              n++;
            } catch {
              // exited meanwhile
            }
          }
          return n;
        },
      };
      nodes.push(node);
      return node;
    },
    destroy() {
      if (destroyed) return;
      destroyed = true;
      for (const node of nodes) removeNamespace(node.ns);
      spawnSync("ip", ["link", "del", bridge]);
    },
  };
}
