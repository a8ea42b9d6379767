// The SOA we synthesise for each served zone. Serial comes from the store (bumped on every change).
import type { RecordType } from '../model/record.js';
import type { ZoneSoa } from '../model/zone.js';

/** Settings of one served zone, from config. Names are absolute and lower-case. */
export interface ZoneSettings {
  name: string;
  /** NS targets at the apex; the first is the SOA MNAME. Default: `ns1.<zone>`. */
  nameservers: string[];
  /** SOA RNAME in domain form (`hostmaster.<zone>`). */
  hostmaster: string;
  /** Address for in-zone nameserver glue when the user has not defined one. */
  nodeIp: string;
}

export interface Soa {
  mname: string;
  rname: string;
  serial: number;
  refresh: number;
  retry: number;
  expire: number;
  /** Negative-caching TTL (RFC 2308). */
  minimum: number;
  /** TTL of the SOA record itself. */
  ttl: number;
}

/** Timers suited to a small private zone served by one primary; negative answers cached 60 s so new names appear quickly. */
export const SOA_TIMERS = { refresh: 3600, retry: 600, expire: 604800, minimum: 60, ttl: 300 } as const;

/** The zone's SOA: `fields` from an imported zone file when given, else from the settings and SOA_TIMERS; the serial always ours. */
export function soaFor(zone: ZoneSettings, serial: number, fields?: ZoneSoa | null): Soa {
  if (fields) return { ...fields, serial };
  return { mname: zone.nameservers[0] ?? `ns1.${zone.name}`, rname: zone.hostmaster, serial, ...SOA_TIMERS };
}

/** A record as the DNS layer serves it: a stored record or one we synthesise (SOA, apex NS, glue). */
export interface ServedRecord {
  name: string;
  type: RecordType | 'SOA';
  ttl: number;
  values: unknown[];
}
