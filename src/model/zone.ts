// A zone's SOA settings as an imported zone file gave them (RFC 1035 §3.3.13). The serial is not
// among them: the store owns it (bumped on every change, never below the imported one).
import { z } from 'zod';
import { targetName } from './name.js';

/** RFC 1035 §3.3.13: SOA timers are 32-bit unsigned; RFC 2181 §8: TTLs 31-bit. */
const u32 = z.number().int('must be an integer').min(0).max(2 ** 32 - 1);
const ttl = z.number().int('must be an integer').min(0).max(2 ** 31 - 1);

export const zoneSoa = z
  .object({
    mname: targetName.describe('Primary nameserver (MNAME)'),
    rname: targetName.describe('Mailbox of the person responsible, in domain form (RNAME)'),
    refresh: u32,
    retry: u32,
    expire: u32,
    minimum: u32.describe('Negative-caching TTL (RFC 2308)'),
    ttl: ttl.describe('TTL of the SOA record itself'),
  })
  .strict()
  .describe("The zone's SOA fields other than the serial");
export type ZoneSoa = z.infer<typeof zoneSoa>;
