import { describe, expect, it } from "vitest";
import { loadApiEnv } from "../apps/api/src/env";
import { buildOpenApiDocument } from "../apps/api/src/openapi";
import { contractRoutes } from "./helpers/contract";

const METHODS = ["get", "post", "put", "patch", "delete"];

describe("docs/API.md and /openapi.json", () => {
  const doc = buildOpenApiDocument(loadApiEnv({}));
  const served = Object.entries(doc.paths ?? {})
    .flatMap(([p, ops]) =>
      Object.keys(ops as object)
        .filter((m) => METHODS.includes(m))
        .map((m) => `${m} ${p}`),
    )
    .sort();
  const promised = contractRoutes()
    .map((r) => `${r.method} ${r.path}`)
    .sort();

  it("the contract names routes", () => {
    expect(promised.length).toBeGreaterThan(10);
  });

  it("every route the API documents is in the contract, and every route of the contract is documented", () => {
    expect(served).toEqual(promised);
  });
});
