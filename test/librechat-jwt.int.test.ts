import http from "node:http";
import type { AddressInfo } from "node:net";
import { createCodeExecutionTool } from "@librechat/agents";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT } from "jose";
import type { CryptoKey } from "jose";
import nodeFetch from "node-fetch";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { libreChatDownload, libreChatUpload, toolCall } from "./helpers/librechat";
import { startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

// LibreChat 0.8.6+ signs a short-lived JWT per Code API call (`packages/api/src/auth/codeapi.ts`): EdDSA by
// default or RS256, kid `lc-codeapi-2026-05`, iss `librechat`, aud `codeapi`, ttl <= 300 s, `sub` = the
// LibreChat user, plus tenant_id/role/principal_source/auth_context_hash/jti. The key pairs are made here.

type Keys = { privateKey: CryptoKey; publicKey: CryptoKey };
let ed: Keys;
let rsa: Keys;
let stranger: Keys;
let jwks: http.Server;
let stack: TestStack;
let base: string;

function token(
  keys: Keys,
  alg: "EdDSA" | "RS256",
  sub: string,
  opts: { aud?: string; iss?: string; exp?: number | string; tenant?: string } = {},
) {
  return new SignJWT({
    tenant_id: opts.tenant ?? "legacy",
    role: "USER",
    principal_source: "librechat",
    auth_context_hash: "h",
  })
    .setProtectedHeader({ alg, kid: alg === "EdDSA" ? "lc-codeapi-2026-05" : "lc-rsa" })
    .setSubject(sub)
    .setIssuer(opts.iss ?? "librechat")
    .setAudience(opts.aud ?? "codeapi")
    .setIssuedAt()
    .setJti(crypto.randomUUID())
    .setExpirationTime(opts.exp ?? "5m")
    .sign(keys.privateKey);
}

/**
 * A token as LibreChat mints it (`packages/api/src/auth/codeapi.ts`: iat = nbf = now, exp = now + ttl) on a
 * host whose clock is `aheadS` seconds ahead of ours.
 */
function tokenFromHost(keys: Keys, sub: string, aheadS: number, ttlS = 300) {
  const now = Math.floor(Date.now() / 1000) + aheadS;
  return new SignJWT({ tenant_id: "legacy", role: "USER" })
    .setProtectedHeader({ alg: "EdDSA", kid: "lc-codeapi-2026-05" })
    .setSubject(sub)
    .setIssuer("librechat")
    .setAudience("codeapi")
    .setIssuedAt(now)
    .setNotBefore(now)
    .setJti(crypto.randomUUID())
    .setExpirationTime(now + ttlS)
    .sign(keys.privateKey);
}
const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });
// LibreChat resolves auth headers per call (`authHeaders` may be an async function).
const toolAs = (sub: string, mint: () => Promise<string>, baseUrl = base) =>
  createCodeExecutionTool({ baseUrl, user_id: sub, authHeaders: async () => bearer(await mint()) });

beforeAll(async () => {
  ed = await generateKeyPair("EdDSA", { extractable: true });
  rsa = await generateKeyPair("RS256", { extractable: true });
  stranger = await generateKeyPair("EdDSA", { extractable: true });
});

describe("LibreChat JWTs", () => {
  beforeAll(async () => {
    const keys = [
      { ...(await exportJWK(ed.publicKey)), kid: "lc-codeapi-2026-05", alg: "EdDSA", use: "sig" },
      { ...(await exportJWK(rsa.publicKey)), kid: "lc-rsa", alg: "RS256", use: "sig" },
    ];
    jwks = http.createServer((_req, res) =>
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys })),
    );
    await new Promise<void>((r) => jwks.listen(0, "127.0.0.1", r));
    stack = await startTestStack({
      env: { LIBRECHAT_JWT_JWKS_URL: `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json` },
    });
    base = `${stack.url}/librechat/v1`;
  });
  afterAll(async () => {
    // The API's keep-alive connections to the JWKS server end with that server.
    jwks?.closeAllConnections();
    await new Promise((r) => jwks?.close(r));
    await stack?.close();
  });

  it("accepts valid EdDSA and RS256 tokens from a JWKS; the subject is the LibreChat user", async () => {
    const a = await toolAs("alice", () => token(ed, "EdDSA", "alice")).invoke(
      toolCall({ lang: "py", code: "print('ed ok')" }),
    );
    expect(String(a.content)).toContain("stdout:\ned ok");
    const b = await toolAs("alice", () => token(rsa, "RS256", "alice")).invoke(
      toolCall({ lang: "py", code: "print('rsa ok')" }),
    );
    expect(String(b.content)).toContain("stdout:\nrsa ok");
  });

  it("keeps each subject's files its own", async () => {
    const alice = bearer(await token(ed, "EdDSA", "alice"));
    const up = await libreChatUpload(base, {
      userId: "alice",
      auth: alice,
      files: [{ name: "secret.txt", bytes: "alice only" }],
    });
    expect(up.status).toBe(200);
    const sid = up.body.storage_session_id;
    const fid = up.body.files[0].fileId;
    const got = await libreChatDownload(base, sid, fid, "?kind=user&id=alice", alice);
    expect(got.bytes.toString()).toBe("alice only");
    const bob = bearer(await token(ed, "EdDSA", "bob"));
    expect((await libreChatDownload(base, sid, fid, "?kind=user&id=bob", bob)).status).toBe(403);
    // A token cannot name someone else: the query, the body's user_id and the upload's id are checked against sub.
    expect((await libreChatDownload(base, sid, fid, "?kind=user&id=alice", bob)).status).toBe(403);
    expect(
      (await libreChatUpload(base, { userId: "alice", auth: bob, files: [{ name: "x.txt", bytes: "x" }] })).status,
    ).toBe(403);
    const ref = { id: fid, name: "secret.txt", storage_session_id: sid, kind: "user" };
    await expect(
      createCodeExecutionTool({ baseUrl: base, user_id: "bob", files: [ref], authHeaders: bob }).invoke(
        toolCall({ lang: "py", code: "print(open('/mnt/data/secret.txt').read())" }),
      ),
    ).rejects.toThrow(/not authorized/);
    await expect(
      createCodeExecutionTool({ baseUrl: base, user_id: "alice", files: [ref], authHeaders: bob }).invoke(
        toolCall({ lang: "py", code: "print(1)" }),
      ),
    ).rejects.toThrow(/not authorized/);
  });

  it("refuses a wrong audience, a wrong issuer, an expired token and another key with 401", async () => {
    const cases = [
      await token(ed, "EdDSA", "alice", { aud: "someone-else" }),
      await token(ed, "EdDSA", "alice", { iss: "not-librechat" }),
      await token(ed, "EdDSA", "alice", { exp: Math.floor(Date.now() / 1000) - 60 }),
      await token(stranger, "EdDSA", "alice"),
    ];
    for (const t of cases) {
      const res = await nodeFetch(`${base}/exec`, {
        method: "POST",
        headers: { ...bearer(t), "content-type": "application/json" },
        body: JSON.stringify({ lang: "py", code: "print(1)", user_id: "alice" }),
      });
      expect(res.status).toBe(401);
    }
    await expect(
      toolAs("alice", async () => cases[0]!).invoke(toolCall({ lang: "py", code: "print(1)" })),
    ).rejects.toThrow(/Code execution is not authorized/);
  });
});

describe("LibreChat JWTs: clocks, lifetimes and tenants", () => {
  let jwksServer: http.Server;
  let tenantStack: TestStack;
  let tbase: string;
  beforeAll(async () => {
    const keys = [{ ...(await exportJWK(ed.publicKey)), kid: "lc-codeapi-2026-05", alg: "EdDSA", use: "sig" }];
    jwksServer = http.createServer((_req, res) =>
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys })),
    );
    await new Promise<void>((r) => jwksServer.listen(0, "127.0.0.1", r));
    tenantStack = await startTestStack({
      env: { LIBRECHAT_JWT_JWKS_URL: `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks.json` },
    });
    tbase = `${tenantStack.url}/librechat/v1`;
  });
  afterAll(async () => {
    jwksServer?.closeAllConnections();
    await new Promise((r) => jwksServer?.close(r));
    await tenantStack?.close();
  });

  const exec = (t: string) =>
    nodeFetch(`${tbase}/exec`, {
      method: "POST",
      headers: { ...bearer(t), "content-type": "application/json" },
      body: JSON.stringify({ lang: "py", code: "print('ran')", user_id: "alice" }),
    });

  it("a token from a host 2 s ahead is accepted (default skew 30 s); 60 s ahead, or living 10 years, is 401", async () => {
    const ahead2 = await exec(await tokenFromHost(ed, "alice", 2));
    expect(ahead2.status).toBe(200);
    expect(((await ahead2.json()) as { stdout: string }).stdout).toBe("ran\n");
    // Through LibreChat's own client too: the user sees output, not "not authorized".
    const viaClient = await toolAs("alice", () => tokenFromHost(ed, "alice", 2), tbase).invoke(
      toolCall({ lang: "py", code: "print('skew ok')" }),
    );
    expect(String(viaClient.content)).toContain("stdout:\nskew ok");
    for (const t of [
      await tokenFromHost(ed, "alice", 60),
      await tokenFromHost(ed, "alice", 0, 10 * 365 * 24 * 3600),
      await tokenFromHost(ed, "alice", 0, 301),
    ]) {
      const res = await exec(t);
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({ code: "unauthorized" });
    }
  });

  it("tenant_id names a tenant: the same sub under two tenant_ids, or an ordinary key named like the claim, reaches nothing", async () => {
    const asAcme = bearer(await token(ed, "EdDSA", "alice", { tenant: "acme" }));
    const up = await libreChatUpload(tbase, {
      userId: "alice",
      auth: asAcme,
      files: [{ name: "acme.txt", bytes: "acme's alice" }],
    });
    expect(up.status).toBe(200);
    const sid = up.body.storage_session_id as string;
    const fid = up.body.files[0].fileId as string;
    const q = "?kind=user&id=alice";
    expect((await libreChatDownload(tbase, sid, fid, q, asAcme)).bytes.toString()).toBe("acme's alice");
    // Another LibreChat tenant's alice.
    const asGlobex = bearer(await token(ed, "EdDSA", "alice", { tenant: "globex" }));
    expect((await libreChatDownload(tbase, sid, fid, q, asGlobex)).status).toBe(404);
    // Ordinary keys whose user ids spell the claim, or the JWT namespace: none is that tenant.
    for (const userId of ["acme", "librechat"]) {
      const { key } = await tenantStack.newUser(userId);
      expect((await libreChatDownload(tbase, sid, fid, q, { "X-API-Key": key })).status).toBe(404);
    }
  });
});

// After the JWKS stack above is closed: the socket-leak checks count the whole process's sockets, and that
// stack's worker (its kernel pool refilling) would open some while this one's check runs.
describe("LibreChat JWTs with a PEM key", () => {
  it("verifies with a configured public key (PEM) too", async () => {
    // The other configuration, on a stack of its own (no worker needed to check auth).
    const pemStack = await startTestStack({
      worker: false,
      env: { LIBRECHAT_JWT_PUBLIC_KEY: await exportSPKI(rsa.publicKey), LIBRECHAT_ANONYMOUS_TENANT: "open-tenant" },
    });
    try {
      const pemBase = `${pemStack.url}/librechat/v1`;
      const list = (t: string) => nodeFetch(`${pemBase}/files/${"A".repeat(21)}?detail=full`, { headers: bearer(t) });
      // Authenticated, and the session does not exist: 404, not 401.
      expect((await list(await token(rsa, "RS256", "alice"))).status).toBe(404);
      expect((await list(await token(ed, "EdDSA", "alice"))).status).toBe(401);
      expect((await list(await token(rsa, "RS256", "alice", { aud: "x" }))).status).toBe(401);
      // This operator opened a tenant to callers without credentials (LibreChat without CODEAPI_JWT_ENABLED
      // sends no auth header): they are served, each LibreChat user still on its own; a bad token is not
      // silently treated as none. (Without the setting such a request is 401: librechat.int.test.ts.)
      const anon = await libreChatUpload(pemBase, { userId: "zed", auth: {}, files: [{ name: "z.txt", bytes: "z" }] });
      expect(anon.status).toBe(200);
      const sid = anon.body.storage_session_id;
      const fid = anon.body.files[0].fileId;
      expect((await libreChatDownload(pemBase, sid, fid, "?kind=user&id=zed", {})).bytes.toString()).toBe("z");
      expect((await libreChatDownload(pemBase, sid, fid, "?kind=user&id=yan", {})).status).toBe(403);
      expect(
        (await libreChatDownload(pemBase, sid, fid, "?kind=user&id=zed", bearer(await token(ed, "EdDSA", "zed"))))
          .status,
      ).toBe(401);
    } finally {
      await pemStack.close();
    }
  });
});
