import { describe, expect, it } from "vitest";
import { pickCell } from "@codeinterp/queue";
import type { CellBeat } from "@codeinterp/queue";

const beat = (cellId: string, room: number, draining = false): CellBeat => ({
  cellId,
  at: 0,
  room,
  draining,
  holdMs: 1000,
});

// Evenly spread draws stand in for Math.random: the counts are then exact shares.
const draws = (n: number) => Array.from({ length: n }, (_, i) => (i + 0.5) / n);

describe("placing a new message on a cell (pickCell)", () => {
  it("leaves it to the shared queue when no cell has room, or every cell with room is draining", () => {
    expect(pickCell([])).toBeNull();
    expect(pickCell([beat("a", 0), beat("b", 0)])).toBeNull();
    expect(pickCell([beat("a", 4, true), beat("b", 0)])).toBeNull();
  });

  it("never picks a draining cell or one without room", () => {
    const beats = [beat("full", 0), beat("leaving", 9, true), beat("open", 1)];
    for (const r of draws(50)) expect(pickCell(beats, () => r)?.cellId).toBe("open");
  });

  it("prefers the cell with most room, by room squared: 3 free against 1 free gets 9 of 10", () => {
    const beats = [beat("roomy", 3), beat("busy", 1)];
    const picks = draws(1000).map((r) => pickCell(beats, () => r)?.cellId);
    expect(picks.filter((c) => c === "roomy").length).toBe(900);
    expect(picks.filter((c) => c === "busy").length).toBe(100);
  });

  it("splits evenly between cells with equal room", () => {
    const beats = [beat("a", 2), beat("b", 2)];
    const picks = draws(100).map((r) => pickCell(beats, () => r)?.cellId);
    expect(picks.filter((c) => c === "a").length).toBe(50);
  });
});
