// When new messages arrive: Poisson arrivals at a rate, or a burst spread over a few seconds, from a seeded
// generator so that two runs (before and after a change) send the same schedule.

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Offsets (ms from the start) of n Poisson arrivals at ratePerS: exponential gaps, the first one included. */
export function poissonSchedule(n: number, ratePerS: number, rnd: () => number): number[] {
  const out: number[] = [];
  let t = 0;
  for (let i = 0; i < n; i++) {
    t += (-Math.log(1 - rnd()) / ratePerS) * 1000;
    out.push(t);
  }
  return out;
}

/** Offsets (ms) of n arrivals uniformly spread over seconds, in order. */
export function burstSchedule(n: number, seconds: number, rnd: () => number): number[] {
  return Array.from({ length: n }, () => rnd() * seconds * 1000).sort((a, b) => a - b);
}
