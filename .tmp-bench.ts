import { performance } from 'node:perf_hooks';
import { ZoneIndex } from './src/dns/zone.js';
import { HOME, rec, ZONES } from './test/dns/fixture.js';
const a = (n: string) => rec(HOME, n, { type: 'A', values: ['192.0.2.1'] });
const idx = new ZoneIndex(ZONES);
let t = performance.now();
idx.load(HOME, 1, Array.from({ length: 10_000 }, (_, i) => a(`host${i}.rack${i % 50}`)));
const out = [`load ${(performance.now() - t).toFixed(0)}`];
for (let round = 0; round < 8; round++) {
  t = performance.now();
  for (let i = 0; i < 500; i++) idx.apply({ zone: HOME, serial: 2 + i, upserted: [a(`new${round}-${i}.rack${i % 50}`)], removed: [] });
  out.push((performance.now() - t).toFixed(0));
}
console.log(out.join(' '));
