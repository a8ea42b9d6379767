// The one seeded PRNG of the benches and the tests (test/helpers/prng.ts re-exports it; its types
// are in prng.d.mts). Plain JavaScript: the benches run it without a build step.

/** mulberry32: small, fast, seedable; the same seed gives the same sequence, so runs compare like with like. */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
