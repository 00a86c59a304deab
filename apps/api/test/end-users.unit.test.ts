import { describe, expect, it } from "vitest";
import { callerOf, EndUserNotAllowedError, InvalidEndUserError } from "../src/auth";
import { derivedUserId, isDerivedUserId } from "../src/end-users";
import { jwtTenant, principalOf } from "../src/librechat/auth";

const tenantKey = { keyId: "k1", userId: "acme", kind: "tenant" as const };
const userKey = { keyId: "k2", userId: "ursula", kind: "user" as const };

describe("one end-user rule for every surface", () => {
  it("a tenant key's end user is the same codeinterp user on /v1 (X-End-User) and on the LibreChat surface", () => {
    const v1 = callerOf(tenantKey, "alice");
    const librechat = principalOf({ tenant: "acme", via: "api_key" }, { kind: "user", id: "alice" });
    expect(v1).toMatchObject({ userId: librechat?.userId, tenant: "acme", endUser: "alice", keyKind: "tenant" });
    expect(isDerivedUserId(v1.userId)).toBe(true);
    expect(callerOf(tenantKey, "bob").userId).not.toBe(v1.userId);
    expect(callerOf({ ...tenantKey, userId: "globex" }, "alice").userId).not.toBe(v1.userId);
  });

  it("a tenant key without an end user acts as the tenant; a user key acts as its user and names nobody", () => {
    expect(callerOf(tenantKey, undefined)).toMatchObject({ userId: "acme", tenant: "acme", endUser: null });
    expect(callerOf(userKey, undefined)).toMatchObject({ userId: "ursula", tenant: null, endUser: null });
    expect(() => callerOf(userKey, "alice")).toThrow(EndUserNotAllowedError);
    expect(() => callerOf(userKey, "ursula")).toThrow(EndUserNotAllowedError);
    for (const bad of ["", "x".repeat(201), "a\nb", "a\u0000"])
      expect(() => callerOf(tenantKey, bad)).toThrow(InvalidEndUserError);
  });

  it("a JWT's tenant_id is a derived tenant within the namespace: never an ordinary user, never another deployment's", () => {
    expect(jwtTenant("librechat", undefined)).toBe("librechat");
    const acme = jwtTenant("librechat", "acme");
    expect(isDerivedUserId(acme)).toBe(true);
    expect(acme).not.toBe("acme");
    expect(acme).toBe(derivedUserId("librechat", "tenant", "acme"));
    expect(jwtTenant("librechat-eu", "acme")).not.toBe(acme);
    // A tenant is not an end user of the same name.
    expect(acme).not.toBe(derivedUserId("librechat", "user", "acme"));
  });
});
