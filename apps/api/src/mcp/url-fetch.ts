import { lookup } from "node:dns";
import type { LookupFunction } from "node:net";
import { BlockList, isIP } from "node:net";
import http from "node:http";
import https from "node:https";
import type { IncomingMessage } from "node:http";

/** A URL upload_file may not fetch: not on the operator's allowlist, or an address inside the network. */
export class UrlNotAllowedError extends Error {
  override name = "UrlNotAllowedError";
}

/** The fetch itself failed (no answer, a non-2xx status). */
export class UrlFetchError extends Error {
  override name = "UrlFetchError";
}

// Loopback, private, link-local (cloud metadata at 169.254.169.254), CGNAT, multicast, reserved: never
// fetched, whatever the allowlist says, so the server cannot be pointed at what only it can reach.
const blocked = new BlockList();
for (const [net, bits] of [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4],
] as const)
  blocked.addSubnet(net, bits, "ipv4");
for (const [net, bits] of [
  // Unspecified, loopback and IPv4-compatible; IPv4-mapped addresses (::ffff:a.b.c.d) are checked
  // against the IPv4 ranges above by BlockList itself.
  ["::", 96],
  ["64:ff9b::", 96],
  ["fc00::", 7],
  ["fe80::", 10],
  ["ff00::", 8],
] as const)
  blocked.addSubnet(net, bits, "ipv6");

export function isBlockedAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true;
  return blocked.check(address, family === 4 ? "ipv4" : "ipv6");
}

function hostAllowed(host: string, allowlist: readonly string[]): boolean {
  return allowlist.some((entry) => (entry.startsWith("*.") ? host.endsWith(entry.slice(1)) : host === entry));
}

/** Checks the address the name resolves to, at connect time: a name cannot resolve to a public address for the check and a private one for the fetch. */
const guardedLookup: LookupFunction = (hostname, options, callback) => {
  lookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, "", 4);
    const list = Array.isArray(addresses) ? addresses : [];
    const bad = list.find((a) => isBlockedAddress(a.address));
    if (bad || list.length === 0)
      return callback(new UrlNotAllowedError(`${hostname} resolves to an address inside the network`), "", 4);
    if (options.all) return callback(null, list);
    const first = list[0]!;
    callback(null, first.address, first.family);
  });
};

export interface FetchedUrl {
  body: IncomingMessage;
  /** As the server sent it; the stored file's type falls back to it when the name says nothing. */
  contentType: string;
}

/**
 * Opens `url` for reading when its host is on the allowlist and resolves to a public address. Redirects are
 * not followed (a redirect could leave the allowlist). The caller caps the size while storing the body.
 */
export async function openAllowedUrl(
  raw: string,
  allowlist: readonly string[],
  timeoutMs = 30_000,
): Promise<FetchedUrl> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UrlNotAllowedError("url is not a valid absolute URL");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new UrlNotAllowedError("url must be http(s)");
  if (url.username || url.password) throw new UrlNotAllowedError("url must not carry credentials");
  const host = url.hostname.replace(/^\[|\]$/g, "").toLowerCase();
  if (isIP(host) && isBlockedAddress(host))
    throw new UrlNotAllowedError(`${host} is a private, loopback or metadata address; it is never fetched`);
  if (!hostAllowed(host, allowlist))
    throw new UrlNotAllowedError(
      allowlist.length === 0
        ? "fetching URLs is turned off on this server (no allowed hosts); send the file as content_base64"
        : `${host} is not on this server's list of allowed hosts`,
    );
  const get = url.protocol === "https:" ? https.get : http.get;
  return new Promise<FetchedUrl>((resolve, reject) => {
    const req = get(
      url,
      { lookup: guardedLookup, timeout: timeoutMs, headers: { "user-agent": "codeinterp-mcp" } },
      (res) => {
        const status = res.statusCode ?? 0;
        if (status < 200 || status >= 300) {
          res.resume();
          reject(
            new UrlFetchError(
              `fetching the url answered HTTP ${status}${status >= 300 && status < 400 ? " (redirects are not followed)" : ""}`,
            ),
          );
          return;
        }
        resolve({ body: res, contentType: String(res.headers["content-type"] ?? "") });
      },
    );
    req.on("timeout", () => req.destroy(new UrlFetchError("fetching the url timed out")));
    req.on("error", (err) =>
      reject(
        err instanceof UrlNotAllowedError || err instanceof UrlFetchError
          ? err
          : new UrlFetchError(`fetching the url failed: ${err.message}`),
      ),
    );
  });
}
