import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { sanitizeFilename, uniqueNames } from "../src/index";

const bytes = (s: string): number => Buffer.byteLength(s, "utf8");

describe("sanitizeFilename", () => {
  it.each([
    ["../../etc/passwd", "passwd"],
    ["..\\..\\windows\\system32\\cmd.exe", "cmd.exe"],
    ["C:\\Users\\me\\report.xlsx", "report.xlsx"],
    ["dir/", "dir"],
    ["a\0b.csv", "ab.csv"],
    ["in\u0001vo\u009fice\n.pdf", "invoice.pdf"],
    ["bad\u202Efdp.exe", "badfdp.exe"],
    [".hidden", "hidden"],
    ["...env", "env"],
    [".", "file"],
    ["..", "file"],
    ["", "file"],
    ["   ", "file"],
    ["\0\0", "file"],
    ["/", "file"],
    ["trailing. . ", "trailing"],
    ["CON", "CON_"],
    ["CON.txt", "CON_.txt"],
    ["con.tar.gz", "con_.tar.gz"],
    ["com1", "com1_"],
    ["LPT9.log", "LPT9_.log"],
    ["console.txt", "console.txt"],
    ["data (2).csv", "data (2).csv"],
    ["Résumé.pdf", "Résumé.pdf"],
  ])("%j → %j", (input, expected) => {
    expect(sanitizeFilename(input)).toBe(expected);
  });

  it("normalises to NFC", () => {
    const decomposed = "Cafe\u0301.txt";
    expect(sanitizeFilename(decomposed)).toBe("Caf\u00e9.txt");
  });

  it("limits long multi-byte names to 255 bytes, keeping the extension and whole characters", () => {
    const name = "ä".repeat(150) + "😀".repeat(10) + ".csv"; // 300 + 40 + 4 bytes
    const out = sanitizeFilename(name);
    expect(bytes(out)).toBeLessThanOrEqual(255);
    expect(out.endsWith(".csv")).toBe(true);
    expect(out).not.toContain("\ufffd");
    expect(out.startsWith("ää")).toBe(true);
    expect(Buffer.from(out, "utf8").toString("utf8")).toBe(out);
  });

  it("keeps combining sequences whole when truncating", () => {
    const out = sanitizeFilename("e\u0301\u0302".repeat(100) + ".txt");
    expect(bytes(out)).toBeLessThanOrEqual(255);
    expect(out.normalize("NFC")).toBe(out);
    expect(out.endsWith(".txt")).toBe(true);
  });

  it("treats an absurd extension as part of the name", () => {
    const out = sanitizeFilename("a." + "x".repeat(400));
    expect(bytes(out)).toBeLessThanOrEqual(255);
    expect(out.startsWith("a.")).toBe(true);
  });

  // A hundred generated names: seconds of CPU on a busy 2-core box, more than the default 5 s allows.
  it("property: one safe, visible, bounded, normalised segment", { timeout: 30_000 }, () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 400 }), (name) => {
        const out = sanitizeFilename(name);
        expect(out).not.toBe("");
        expect(out).not.toBe(".");
        expect(out).not.toBe("..");
        expect(out.startsWith(".")).toBe(false);
        expect(out).not.toMatch(/[/\\\0\u0001-\u001f\u007f-\u009f]/);
        expect(bytes(out)).toBeLessThanOrEqual(255);
        expect(out.normalize("NFC")).toBe(out);
        expect(sanitizeFilename(out)).toBe(out); // idempotent
      }),
      { numRuns: 500 },
    );
  });

  it("property: path segments mixed with junk", () => {
    const seg = fc.constantFrom("..", ".", "", "etc", "a b", "x.csv", "\0", "CON", "ü", "\\", "💥");
    fc.assert(
      fc.property(fc.array(seg, { maxLength: 8 }), (parts) => {
        const out = sanitizeFilename(parts.join("/"));
        expect(out).not.toMatch(/[/\\\0]/);
        expect([".", ".."]).not.toContain(out);
      }),
    );
  });
});

describe("uniqueNames", () => {
  it("numbers collisions in input order, keeping the extension", () => {
    const names = uniqueNames([
      { key: "a", name: "data.csv" },
      { key: "b", name: "data.csv" },
      { key: "c", name: "../data.csv" },
      { key: "d", name: "other.csv" },
    ]);
    expect([...names]).toEqual([
      ["a", "data.csv"],
      ["b", "data (2).csv"],
      ["c", "data (3).csv"],
      ["d", "other.csv"],
    ]);
  });

  it("case-insensitive collisions count", () => {
    const names = uniqueNames([
      { key: "a", name: "Data.CSV" },
      { key: "b", name: "data.csv" },
      { key: "c", name: "DATA (2).csv" },
    ]);
    expect(names.get("a")).toBe("Data.CSV");
    expect(names.get("b")).toBe("data (2).csv");
    expect(names.get("c")).toBe("DATA (2) (2).csv");
  });

  it("the same key twice yields one entry with the first name", () => {
    const names = uniqueNames([
      { key: "a", name: "x.txt" },
      { key: "a", name: "y.txt" },
      { key: "b", name: "x.txt" },
    ]);
    expect(names.size).toBe(2);
    expect(names.get("a")).toBe("x.txt");
    expect(names.get("b")).toBe("x (2).txt");
  });

  it("is deterministic and appending never renames earlier items", () => {
    const items = [
      { key: "1", name: "a.tar.gz" },
      { key: "2", name: "A.tar.gz" },
      { key: "3", name: "noext" },
      { key: "4", name: "noext" },
    ];
    const first = uniqueNames(items);
    expect(first.get("2")).toBe("A (2).tar.gz");
    expect(first.get("4")).toBe("noext (2)");
    const more = uniqueNames([...items, { key: "5", name: "a.tar.gz" }]);
    for (const [k, v] of first) expect(more.get(k)).toBe(v);
    expect(more.get("5")).toBe("a (3).tar.gz");
  });

  it("suffixed names stay within 255 bytes", () => {
    const long = "é".repeat(200) + ".csv";
    const names = uniqueNames([
      { key: "a", name: long },
      { key: "b", name: long },
    ]);
    const b = names.get("b")!;
    expect(Buffer.byteLength(b)).toBeLessThanOrEqual(255);
    expect(b.endsWith(" (2).csv")).toBe(true);
    expect(b).not.toBe(names.get("a"));
  });

  it("property: all final names distinct case-insensitively", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            key: fc.string({ maxLength: 3 }),
            name: fc.constantFrom("a.csv", "A.csv", "a (2).csv", "b", "B", ""),
          }),
          {
            maxLength: 30,
          },
        ),
        (items) => {
          const names = uniqueNames(items);
          const lower = [...names.values()].map((n) => n.toLowerCase());
          expect(new Set(lower).size).toBe(lower.length);
          expect(names.size).toBe(new Set(items.map((i) => i.key)).size);
        },
      ),
    );
  });
});
