// The benches' one seeded PRNG (the tests have the same generator in test/helpers/prng.ts; the
// benches are plain JavaScript run without a build step, so they keep their own copy).

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
