// Types of prng.mjs, for the tests that import the same generator (test/helpers/prng.ts).
/** mulberry32: small, fast, seedable; the same seed gives the same sequence. */
export declare function prng(seed: number): () => number;
