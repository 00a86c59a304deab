export interface Summary {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

/** Nearest-rank percentile of an ascending array. */
function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function summarize(values: number[]): Summary {
  const s = [...values].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / (s.length || 1);
  return {
    n: s.length,
    p50: pct(s, 50),
    p95: pct(s, 95),
    p99: pct(s, 99),
    mean,
    min: s[0] ?? NaN,
    max: s[s.length - 1] ?? NaN,
  };
}

export const median = (values: number[]): number =>
  pct(
    [...values].sort((a, b) => a - b),
    50,
  );

export const round = (x: number, digits = 1): number =>
  Number.isFinite(x) ? Math.round(x * 10 ** digits) / 10 ** digits : x;

export const now = (): number => performance.now();

/** Nearest-rank percentile p (0-100) of unsorted values; NaN when empty. */
export const percentile = (values: number[], p: number): number =>
  pct(
    [...values].sort((a, b) => a - b),
    p,
  );
