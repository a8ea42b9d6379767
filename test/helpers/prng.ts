// A small seeded PRNG (mulberry32): generated inputs that a failing run can replay by its seed. The one
// generator lives in bench/lib/prng.mjs (the benches run it as plain JavaScript, without a build step).
export { prng } from '../../bench/lib/prng.mjs';
