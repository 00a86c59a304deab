import ipaddr from "ipaddr.js";

/**
 * The operator's egress allowlist: which destinations kernels may reach through the egress proxy.
 *
 * Entries (comma- or whitespace-separated in KERNEL_EGRESS_ALLOW):
 * - `pypi.org`, `pypi.org:8443`: one host name; `*.example.com`: its subdomains (not the name itself).
 * - `203.0.113.7`, `10.20.0.0/16`, `[fd00::1]`, `[fd00::/8]:3141`: addresses or ranges. Only these can open a
 *   private, loopback or link-local destination (an on-prem mirror): a listed name that resolves there is refused.
 * Without a port, an entry allows 80 and 443.
 */
export type EgressRule =
  | { kind: "name"; name: string; wildcard: boolean; ports: number[] }
  | { kind: "range"; range: [ipaddr.IPv4 | ipaddr.IPv6, number]; ports: number[] };

export class EgressRuleError extends Error {
  override name = "EgressRuleError";
}

const DEFAULT_PORTS = [80, 443];
const NAME = /^(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

function parsePort(text: string | undefined, entry: string): number[] {
  if (text === undefined) return DEFAULT_PORTS;
  const port = Number(text);
  if (!Number.isInteger(port) || port < 1 || port > 65_535)
    throw new EgressRuleError(`bad port in egress entry "${entry}"`);
  return [port];
}

function parseRange(text: string, entry: string): [ipaddr.IPv4 | ipaddr.IPv6, number] {
  try {
    if (text.includes("/")) return ipaddr.parseCIDR(text);
    const addr = ipaddr.parse(text);
    return [addr, addr.kind() === "ipv4" ? 32 : 128];
  } catch {
    throw new EgressRuleError(`bad address in egress entry "${entry}"`);
  }
}

export function parseEgressRule(raw: string): EgressRule {
  const entry = raw.trim().toLowerCase();
  // [v6 address or range] with an optional port
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
  if (bracketed)
    return { kind: "range", range: parseRange(bracketed[1] ?? "", entry), ports: parsePort(bracketed[2], entry) };
  const [host, port, ...rest] = entry.split(":");
  if (host === undefined || rest.length > 0)
    throw new EgressRuleError(`bad egress entry "${raw}" (bracket IPv6 addresses)`);
  const ports = parsePort(port, entry);
  const bare = host.split("/")[0] ?? "";
  if (ipaddr.isValid(bare)) return { kind: "range", range: parseRange(host, entry), ports };
  const name = NAME.exec(host);
  if (!name) throw new EgressRuleError(`bad host name in egress entry "${raw}"`);
  return { kind: "name", name: host.replace(/^\*\./, ""), wildcard: Boolean(name[1]), ports };
}

export function parseEgressAllowlist(text: string): EgressRule[] {
  return text
    .split(/[\s,]+/)
    .filter(Boolean)
    .map(parseEgressRule);
}

/** An address as ipaddr.js sees it, with IPv4-mapped IPv6 (::ffff:10.0.0.1) unwrapped so ranges apply. */
function normalize(address: string): ipaddr.IPv4 | ipaddr.IPv6 {
  const addr = ipaddr.parse(address);
  return addr.kind() === "ipv6" && (addr as ipaddr.IPv6).isIPv4MappedAddress()
    ? (addr as ipaddr.IPv6).toIPv4Address()
    : addr;
}

function inRange(addr: ipaddr.IPv4 | ipaddr.IPv6, range: [ipaddr.IPv4 | ipaddr.IPv6, number]): boolean {
  return addr.kind() === range[0].kind() && addr.match(range);
}

/** Global unicast: not private, loopback, link-local (cloud metadata), unique-local, CGNAT, reserved or multicast. */
export function isPublicAddress(address: string): boolean {
  return normalize(address).range() === "unicast";
}

export type EgressDecision = { allowed: true } | { allowed: false; reason: string };

export class EgressPolicy {
  constructor(private readonly rules: EgressRule[]) {}

  get empty(): boolean {
    return this.rules.length === 0;
  }

  /** Whether a host name (not an address) may be asked for on this port; its addresses are checked after resolving. */
  allowsName(host: string, port: number): boolean {
    const name = host.toLowerCase().replace(/\.$/, "");
    return this.rules.some(
      (r) =>
        r.kind === "name" && r.ports.includes(port) && (r.wildcard ? name.endsWith(`.${r.name}`) : name === r.name),
    );
  }

  /** Whether an address listed explicitly (or inside a listed range) covers this destination. */
  listsAddress(address: string, port: number): boolean {
    const addr = normalize(address);
    return this.rules.some((r) => r.kind === "range" && r.ports.includes(port) && inRange(addr, r.range));
  }

  /**
   * May a connection go to `address` (already resolved) on `port`, asked for as `host`? A listed address always;
   * a listed name only where it resolved to a public address, so a name cannot be pointed at internal services.
   */
  decide(host: string, address: string, port: number): EgressDecision {
    if (this.listsAddress(address, port)) return { allowed: true };
    if (ipaddr.isValid(host)) return { allowed: false, reason: "address not in the allowlist" };
    if (!this.allowsName(host, port)) return { allowed: false, reason: "host not in the allowlist" };
    if (!isPublicAddress(address)) return { allowed: false, reason: `resolves to a non-public address (${address})` };
    return { allowed: true };
  }
}
