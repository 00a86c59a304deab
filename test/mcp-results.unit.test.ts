import { describe, expect, it } from "vitest";
import { capText } from "../apps/api/src/mcp/results";

// What a model sees of long output in an execute_code result.
describe("MCP output cap", () => {
  it("keeps short output whole", () => {
    expect(capText("a\nb\n", 200)).toBe("a\nb\n");
  });

  it("keeps the head and the tail of long output around a note saying how much was left out", () => {
    const text = `START${"x".repeat(10_000)}END`;
    const capped = capText(text, 1000);
    expect(capped.startsWith("START")).toBe(true);
    expect(capped.endsWith("END")).toBe(true);
    expect(capped).toContain(`[... ${text.length - 1000} characters omitted ...]`);
    expect(capped.length).toBeLessThan(1100);
  });
});
