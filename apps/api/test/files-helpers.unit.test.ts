import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildPrompt, formatSize } from "../src/files/context";
import { mimeTypeForUpload, normaliseMediaType } from "../src/files/mime";
import {
  HEAD_BYTES,
  parseHeaderRow,
  previewFile,
  previewKind,
  scanJsonKeys,
  sheetNamesFromWorkbookXml,
} from "../src/files/preview";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "ci-preview-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("parseHeaderRow", () => {
  it("reads a header with quotes, escaped quotes and CRLF", () => {
    expect(parseHeaderRow('date,"region, name","say ""hi""",amount\r\n1,2,3,4')).toEqual([
      "date",
      "region, name",
      'say "hi"',
      "amount",
    ]);
  });
  it("guesses ; and tab delimiters, and takes a given one", () => {
    expect(parseHeaderRow("a;b;c\n1;2;3")).toEqual(["a", "b", "c"]);
    expect(parseHeaderRow("a\tb\n")).toEqual(["a", "b"]);
    expect(parseHeaderRow("a,b\tc\n", { delimiter: "\t" })).toEqual(["a,b", "c"]);
  });
  it("drops a field cut off by the end of a head, and keeps a last line without newline in a whole file", () => {
    expect(parseHeaderRow("a,b,partial", { complete: false })).toEqual(["a", "b"]);
    expect(parseHeaderRow("a,b,c", { complete: true })).toEqual(["a", "b", "c"]);
    expect(parseHeaderRow("")).toEqual([]);
  });
  it("flattens control characters and bounds lengths", () => {
    expect(parseHeaderRow('"a\nb",c\n')).toEqual(["a b", "c"]);
    expect(parseHeaderRow(`${"x".repeat(500)},y\n`)[0]).toHaveLength(120);
  });
});

describe("scanJsonKeys", () => {
  it("finds top-level keys of a truncated object, skipping nested ones", () => {
    expect(scanJsonKeys('{"a": {"nested": 1, "x": [1, {"y": 2}]}, "b": "s,\\"t", "c": [1,2], "cut')).toEqual({
      keys: ["a", "b", "c"],
      array: false,
    });
  });
  it("reads the first element of an array", () => {
    expect(scanJsonKeys('[{"id": 1, "name": "x"}, {"other": 2}]')).toEqual({ keys: ["id", "name"], array: true });
    expect(scanJsonKeys("[1, 2]")).toEqual({ keys: [], array: true });
    expect(scanJsonKeys("42")).toBeNull();
  });
});

describe("sheetNamesFromWorkbookXml", () => {
  it("reads names in order, with entities and prefixes", () => {
    const xml =
      '<workbook><sheets><sheet name="Sales &amp; costs" sheetId="1" r:id="rId1"/><x:sheet sheetId="2" name=\'Q&#228;\'/></sheets></workbook>';
    expect(sheetNamesFromWorkbookXml(xml)).toEqual(["Sales & costs", "Qä"]);
  });
});

describe("previewFile", () => {
  it("reads only a bounded head of a big CSV", async () => {
    const file = path.join(dir, "big.csv");
    await writeFile(file, `x,y,z\n${"1,2,3\n".repeat(HEAD_BYTES)}`);
    expect(await previewFile({ blobPath: file, name: "big.csv", mimeType: "text/csv" })).toEqual({
      kind: "columns",
      columns: ["x", "y", "z"],
    });
  });
  it("gives null for binary content, unknown types, a broken workbook and a missing file", async () => {
    const bin = path.join(dir, "bin.txt");
    await writeFile(bin, Buffer.from([0x41, 0, 0x42]));
    expect(await previewFile({ blobPath: bin, name: "bin.txt", mimeType: "text/plain" })).toBeNull();
    expect(await previewFile({ blobPath: bin, name: "x.png", mimeType: "image/png" })).toBeNull();
    expect(await previewFile({ blobPath: bin, name: "x.xlsx", mimeType: "application/octet-stream" })).toBeNull();
    expect(await previewFile({ blobPath: path.join(dir, "nope"), name: "a.csv", mimeType: "text/csv" })).toBeNull();
  });
  it("classifies by name and type", () => {
    expect(previewKind("a.TSV", "application/octet-stream")).toBe("tsv");
    expect(previewKind("nb.ipynb", "application/x-ipynb+json")).toBe("json");
    expect(previewKind("script.py", "application/octet-stream")).toBe("text");
    expect(previewKind("a.bin", "application/octet-stream")).toBeNull();
  });
});

describe("mimeTypeForUpload", () => {
  it("prefers a specific client type, then the name, then a weak client type", () => {
    expect(mimeTypeForUpload("image/png; charset=binary", "x.bin")).toBe("image/png");
    expect(mimeTypeForUpload("application/octet-stream", "x.csv")).toBe("text/csv");
    expect(mimeTypeForUpload("text/plain", "x.json")).toBe("application/json");
    expect(mimeTypeForUpload("application/vnd.ms-excel", "x.csv")).toBe("text/csv");
    expect(mimeTypeForUpload("text/plain", "README")).toBe("text/plain");
    expect(mimeTypeForUpload("", "README")).toBe("application/octet-stream");
    expect(mimeTypeForUpload("text/html\r\nX-Evil: 1", "a")).toBe("application/octet-stream");
  });
  it("refuses malformed media types", () => {
    expect(normaliseMediaType("Text/CSV")).toBe("text/csv");
    expect(normaliseMediaType("nonsense")).toBeNull();
  });
});

describe("prompt", () => {
  it("formats sizes", () => {
    expect(formatSize(0)).toBe("0 B");
    expect(formatSize(1229)).toBe("1.2 KB");
    expect(formatSize(5 * 1024 * 1024)).toBe("5.0 MB");
  });
  it("lists files with their previews, and says so when there are none", () => {
    const prompt = buildPrompt([
      {
        path: "sales.csv",
        mimeType: "text/csv",
        size: 1229,
        preview: { kind: "columns", columns: ["date", "region", "amount"] },
      },
      { path: "out/bad\nname.txt", mimeType: "text/plain", size: 3, preview: null },
    ]);
    expect(prompt).toBe(
      [
        "Files available in /mnt/data for this message:",
        "- /mnt/data/sales.csv (text/csv, 1.2 KB) — columns: date, region, amount",
        "- /mnt/data/out/bad name.txt (text/plain, 3 B)",
        "Save files you create under /mnt/data so the user can download them.",
      ].join("\n"),
    );
    expect(buildPrompt([])).toContain("No files");
  });
});
