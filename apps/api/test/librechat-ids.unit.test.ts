import { randomUUID } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { derivedUserId, LIBRECHAT_ID, libreChatIdToUuid, newSessionId, uuidToLibreChatId } from "../src/librechat/ids";
import { execBody, FileRef } from "../src/librechat/schemas";

describe("LibreChat id mapping", () => {
  it("writes every version-4 UUID as 21 characters LibreChat accepts, and reads it back", () => {
    fc.assert(
      fc.property(fc.uuid({ version: 4 }), (uuid) => {
        const id = uuidToLibreChatId(uuid);
        expect(id).toMatch(LIBRECHAT_ID);
        expect(libreChatIdToUuid(id)).toBe(uuid.toLowerCase());
      }),
      { numRuns: 2000 },
    );
    const uuid = randomUUID();
    expect(libreChatIdToUuid(uuidToLibreChatId(uuid))).toBe(uuid);
  });

  it("keeps distinct files distinct", () => {
    const ids = new Set(Array.from({ length: 5000 }, () => uuidToLibreChatId(randomUUID())));
    expect(ids.size).toBe(5000);
  });

  it("refuses what cannot be one of ours", () => {
    expect(() => uuidToLibreChatId("00000000-0000-7000-8000-000000000000")).toThrow(); // not v4
    expect(libreChatIdToUuid("short")).toBeNull();
    expect(libreChatIdToUuid("A".repeat(22))).toBeNull();
    expect(libreChatIdToUuid("abc/def.ghi+jkl=mnopq")).toBeNull();
    // The top four bits of 126 are never set by a UUID (122 bits).
    expect(libreChatIdToUuid("_".repeat(21))).toBeNull();
  });

  it("mints 21-character session ids", () => {
    for (let i = 0; i < 100; i++) expect(newSessionId()).toMatch(LIBRECHAT_ID);
    expect(newSessionId()).not.toBe(newSessionId());
  });

  it("gives each LibreChat user under each tenant a user of its own", () => {
    expect(derivedUserId("acme", "user", "u1")).toBe(derivedUserId("acme", "user", "u1"));
    expect(derivedUserId("acme", "user", "u1")).not.toBe(derivedUserId("acme", "user", "u2"));
    expect(derivedUserId("acme", "user", "u1")).not.toBe(derivedUserId("other", "user", "u1"));
    expect(derivedUserId("acme", "user", "a1")).not.toBe(derivedUserId("acme", "agent", "a1"));
    // No separator games: the pair is hashed as a JSON array.
    expect(derivedUserId("a:b", "user", "c")).not.toBe(derivedUserId("a", "user", "b:c"));
  });
});

describe("LibreChat file references", () => {
  const fid = uuidToLibreChatId(randomUUID());
  const sid = newSessionId();

  it("reads the Gen-1 shape {id, session_id, name}", () => {
    expect(FileRef.parse({ id: fid, session_id: sid, name: "plot.png" })).toEqual({
      fileId: fid,
      sessionId: sid,
      name: "plot.png",
      kind: undefined,
    });
  });

  it("reads the Gen-2 shape {id, resource_id, name, storage_session_id, kind, version?}", () => {
    const ref = { id: fid, resource_id: fid, name: "data.csv", storage_session_id: sid, kind: "user", version: 3 };
    expect(FileRef.parse(ref)).toEqual({ fileId: fid, sessionId: sid, name: "data.csv", kind: "user" });
  });

  it("refuses a reference without a session or with ids LibreChat would not send", () => {
    expect(FileRef.safeParse({ id: fid, name: "x" }).success).toBe(false);
    expect(FileRef.safeParse({ id: "../../etc/passwd", session_id: sid }).success).toBe(false);
    expect(FileRef.safeParse({ id: fid, storage_session_id: "x".repeat(22) }).success).toBe(false);
  });

  it("drops unknown body keys, a leaked LIBRECHAT_CODE_API_KEY included", () => {
    const body = execBody(1000, 5).parse({
      lang: "py",
      code: "print(1)",
      user_id: "u",
      LIBRECHAT_CODE_API_KEY: "secret",
      executionRouteKey: "x",
      files: [{ id: fid, session_id: sid, name: "a" }],
    });
    expect(JSON.stringify(body)).not.toContain("secret");
    expect(Object.keys(body).sort()).toEqual(["code", "files", "lang", "user_id"]);
  });
});
