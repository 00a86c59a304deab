import { mkdtemp, readdir, rm } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { createDb } from "@codeinterp/db";
import { createFileStore } from "@codeinterp/files";
import { createBlobStore } from "@codeinterp/workspace";
import { afterAll, beforeAll, expect, it } from "vitest";
import { HttpError } from "../src/errors";
import { receiveUpload } from "../src/files/upload";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "ci-upload-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

it("a client that hangs up before the upload is read (auth was slow) gets an answer, not a request left hanging", async () => {
  // Never reaches the database: nothing is received.
  const db = createDb({ url: "postgresql://unused@127.0.0.1:9/unused" });
  const files = createFileStore({ db, blobs: createBlobStore(dir) });
  const outcome = new Promise<unknown>((resolve) => {
    const server = http.createServer((req) => {
      // Stands in for authentication still running when the client goes away.
      req.once("close", () => {
        receiveUpload(req, { files, maxBytes: 1_000_000 }).then(resolve, resolve);
        server.close();
      });
    });
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      const b = "----late";
      const req = http.request({
        port,
        host: "127.0.0.1",
        method: "POST",
        headers: { "content-type": `multipart/form-data; boundary=${b}`, "content-length": "100000" },
      });
      req.on("error", () => undefined);
      req.write(
        `--${b}\r\nContent-Disposition: form-data; name="file"; filename="half.bin"\r\n\r\n${"x".repeat(500)}`,
        () => req.destroy(),
      );
    });
  });
  const err = await outcome;
  await db.$disconnect();
  expect(err).toBeInstanceOf(HttpError);
  expect((err as HttpError).status).toBe(400);
  expect(await readdir(path.join(dir, "blobs", "tmp")).catch(() => [])).toEqual([]);
});
