import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { loadSigningSecret, SECRET_FILE } from "../src/links/secret";
import { createLinkSigner, InvalidLinkSignatureError, LinkExpiredError } from "../src/links/signer";

const FILE = "5f0c1f0e-8a0b-4c55-9a53-1b2f7c2d9e10";
const OTHER = "0b7e6a8c-2d1f-4f3e-8c7b-6a5d4e3f2a1b";

describe("link signer", () => {
  const signer = createLinkSigner("x".repeat(32));
  const at = new Date("2026-11-29T12:00:00Z");
  const link = signer.sign(FILE, new Date(at.getTime() + 60_000));

  it("accepts its own link until it expires, then says it expired", () => {
    expect(() => signer.verify(FILE, String(link.expires), link.signature, at)).not.toThrow();
    expect(() => signer.verify(FILE, String(link.expires), link.signature, new Date(at.getTime() + 61_000))).toThrow(
      LinkExpiredError,
    );
  });

  it("rejects a changed file id, expiry or signature, a missing part, and another secret's link", () => {
    const flip = link.signature.slice(0, -1) + (link.signature.endsWith("A") ? "B" : "A");
    // The same 32 bytes spelled differently: the last character's two unused bits changed.
    const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const respelled = link.signature.slice(0, -1) + B64URL[B64URL.indexOf(link.signature.at(-1)!) ^ 1]!;
    expect(Buffer.from(respelled, "base64url")).toEqual(Buffer.from(link.signature, "base64url"));
    for (const [id, exp, sig] of [
      [OTHER, String(link.expires), link.signature],
      [FILE, String(link.expires + 3600), link.signature],
      [FILE, String(link.expires), flip],
      [FILE, String(link.expires), respelled],
      [FILE, undefined, link.signature],
      [FILE, String(link.expires), undefined],
      [FILE, "1e12", link.signature],
      [FILE, String(link.expires), `${link.signature}=`],
    ] as const) {
      expect(() => signer.verify(id, exp, sig, at)).toThrow(InvalidLinkSignatureError);
    }
    const other = createLinkSigner("y".repeat(32)).sign(FILE, new Date(link.expires * 1000));
    expect(() => signer.verify(FILE, String(other.expires), other.signature, at)).toThrow(InvalidLinkSignatureError);
  });
});

describe("signing secret", () => {
  let dir = "";
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("is made once in DATA_DIR (0600) and every process sharing it reads the same one", async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "ci-secret-"));
    const dataDir = path.join(dir, "data");
    const all = await Promise.all(Array.from({ length: 8 }, () => loadSigningSecret({ DATA_DIR: dataDir })));
    expect(new Set(all).size).toBe(1);
    expect(all[0]!.length).toBeGreaterThanOrEqual(40);
    expect(((await stat(path.join(dataDir, SECRET_FILE))).mode & 0o777).toString(8)).toBe("600");
    expect(await loadSigningSecret({ DATA_DIR: dataDir })).toBe(all[0]);
    expect((await readFile(path.join(dataDir, SECRET_FILE), "utf8")).trim()).toBe(all[0]);
  });

  it("SIGNED_LINK_SECRET wins; an empty kept file is an error, not an empty key", async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "ci-secret-"));
    expect(await loadSigningSecret({ DATA_DIR: dir, SIGNED_LINK_SECRET: "s".repeat(32) })).toBe("s".repeat(32));
    await writeFile(path.join(dir, SECRET_FILE), "\n");
    await expect(loadSigningSecret({ DATA_DIR: dir })).rejects.toThrow(/empty/);
  });
});
