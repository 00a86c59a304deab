import { describe, expect, it } from "vitest";
import { isBlockedAddress, openAllowedUrl, UrlNotAllowedError } from "../apps/api/src/mcp/url-fetch";

// upload_file { url }: which addresses the server never fetches from, whatever the allowlist says.
describe("MCP URL guard", () => {
  it("refuses loopback, private, link-local (metadata), CGNAT, multicast and their IPv6 forms", () => {
    for (const a of [
      "127.0.0.1",
      "127.9.9.9",
      "10.1.2.3",
      "172.16.0.1",
      "172.31.255.255",
      "192.168.1.1",
      "169.254.169.254",
      "100.64.0.1",
      "0.0.0.0",
      "224.0.0.1",
      "255.255.255.255",
      "::1",
      "::",
      "::ffff:127.0.0.1",
      "::ffff:a9fe:a9fe",
      "::127.0.0.1",
      "fd00::1",
      "fe80::1",
      "not an address",
    ])
      expect(isBlockedAddress(a), a).toBe(true);
  });

  it("lets public addresses through", () => {
    for (const a of ["8.8.8.8", "1.1.1.1", "172.32.0.1", "::ffff:8.8.8.8", "2606:4700:4700::1111"])
      expect(isBlockedAddress(a), a).toBe(false);
  });

  it("fetches nothing with the default (empty) allowlist, nor an unlisted host, nor a listed private address", async () => {
    await expect(openAllowedUrl("https://example.com/a.csv", [])).rejects.toThrow(/turned off/);
    await expect(openAllowedUrl("https://example.org/a.csv", ["*.example.com"])).rejects.toThrow(/not on this server/);
    await expect(openAllowedUrl("http://[::1]:8080/", ["::1"])).rejects.toThrow(UrlNotAllowedError);
    await expect(openAllowedUrl("http://user:pw@example.com/", ["example.com"])).rejects.toThrow(/credentials/);
    await expect(openAllowedUrl("file:///etc/passwd", ["example.com"])).rejects.toThrow(/http\(s\)/);
  });
});
