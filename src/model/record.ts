// Record sets (RRsets): one row per owner name + type, the unit the API, store and DNS share.
import { z } from 'zod';
import { TLS_MODES } from './route.js';
import { ipv4, ipv6, ownerNameInput, targetName, upstream } from './name.js';

export const RECORD_TYPES = ['A', 'AAAA', 'CNAME', 'TXT', 'MX', 'SRV', 'PTR', 'CAA', 'NS'] as const;
export type RecordType = (typeof RECORD_TYPES)[number];

/** Default TTL for records that do not give one (seconds). */
export const DEFAULT_TTL = 300;
/** RFC 2181 §8: TTLs are 31-bit unsigned. */
const MAX_TTL = 2 ** 31 - 1;
/** Values in one RRset; a bound that keeps a single answer well below the 64 KiB TCP limit. */
const MAX_VALUES = 100;
/** A TXT value is split into 255-byte character-strings on the wire; this bounds the whole value. */
const MAX_TEXT = 4000;

const printable = (what: string) =>
  z
    .string()
    .max(MAX_TEXT)
    .refine((v) => /^[\x20-\x7e]*$/.test(v), `${what} may hold printable ASCII only (no newlines or control characters)`);

const u16 = z.number().int('must be an integer').min(0).max(65535);

export const proxySchema = z
  .object({
    enabled: z.boolean().default(false),
    upstreams: z.array(upstream).max(MAX_VALUES).default([]),
    tls: z.enum(TLS_MODES).optional().describe('TLS for the proxied name: off (default), internal CA, acme'),
  })
  .strict()
  .superRefine((p, ctx) => {
    if (p.enabled && p.upstreams.length === 0)
      ctx.addIssue({ code: 'custom', path: ['upstreams'], message: 'at least one upstream is required when the proxy is enabled' });
  })
  .describe('Reverse-proxy settings for this name (applied by the Caddy reconciler)');
export type Proxy = z.infer<typeof proxySchema>;

const values = <T extends z.ZodType>(item: T) => z.array(item).min(1, 'at least one value is required').max(MAX_VALUES);

export const mxValue = z.object({ preference: u16, exchange: targetName }).strict();
export const srvValue = z.object({ priority: u16, weight: u16, port: u16, target: targetName }).strict();
export const caaValue = z
  .object({
    flags: z.number().int().min(0).max(255).default(0),
    tag: z.string().regex(/^[a-z0-9]{1,15}$/i, 'tag must be 1-15 letters or digits'),
    value: printable('CAA value'),
  })
  .strict();

// One variant per type; `values` is typed per variant. `proxy` only makes sense on address records.
const common = {
  name: ownerNameInput,
  ttl: z.number().int('must be an integer').min(0).max(MAX_TTL).default(DEFAULT_TTL),
  service_name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'service_name may hold letters, digits, ".", "-", "_" (max 63)').optional(),
};
export const recordInput = z.discriminatedUnion('type', [
  z.object({ ...common, type: z.literal('A'), values: values(ipv4), proxy: proxySchema.optional() }).strict(),
  z.object({ ...common, type: z.literal('AAAA'), values: values(ipv6), proxy: proxySchema.optional() }).strict(),
  z.object({ ...common, type: z.literal('CNAME'), values: z.array(targetName).length(1, 'a CNAME has exactly one target') }).strict(),
  z.object({ ...common, type: z.literal('TXT'), values: values(printable('TXT value')) }).strict(),
  z.object({ ...common, type: z.literal('MX'), values: values(mxValue) }).strict(),
  z.object({ ...common, type: z.literal('SRV'), values: values(srvValue) }).strict(),
  z.object({ ...common, type: z.literal('PTR'), values: values(targetName) }).strict(),
  z.object({ ...common, type: z.literal('CAA'), values: values(caaValue) }).strict(),
  z.object({ ...common, type: z.literal('NS'), values: values(targetName) }).strict(),
]);
export type RecordInput = z.infer<typeof recordInput>;

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** `{type, values}` for one record type, discriminated on `type`. */
export type RecordData = DistributiveOmit<RecordInput, 'name' | 'service_name' | 'proxy' | 'ttl'>;

/** A stored record set, as the API returns it and the DNS server serves it. `name` is absolute and inside `zone`. */
export type StoredRecord = RecordData & {
  name: string;
  zone: string;
  ttl: number;
  proxy: Proxy | null;
  service_name: string | null;
  created_at: string;
  updated_at: string;
};

/** A validated record set ready to store: `name` is absolute and inside `zone`. */
export interface RecordWrite {
  name: string;
  zone: string;
  data: RecordData;
  ttl: number;
  proxy: Proxy | null;
  service_name: string | null;
}

/** RFC 1035 §4.2.2: a DNS message over TCP carries a 16-bit length, so no response is longer. */
export const MAX_DNS_MESSAGE = 65535;
/** The smallest response that answers with a whole set: header, EDNS OPT record (RFC 6891). */
const HEADER_BYTES = 12;
const OPT_BYTES = 11;
/** Question type and class. */
const QUESTION_FIXED = 4;
/** Each answer's owner is the question name, written as a 2-byte pointer to it (src/dns/wire.ts). */
const OWNER_POINTER = 2;
/** Type, class, TTL, RDLENGTH. */
const RR_FIXED = 10;
/** RFC 1035 §2.3.4: a wildcard set answers questions with names up to 255 octets. */
const MAX_NAME_WIRE = 255;
/** RFC 1035 §3.3: a TXT character-string holds at most 255 octets (longer values are split). */
const CHARSTRING = 255;

/** Octets of an absolute name on the wire, without compression. */
const nameWire = (name: string): number => (name === '.' ? 1 : name.replace(/\.$/, '').split('.').reduce((n, label) => n + 1 + Buffer.byteLength(label), 1));

function rdataBytes(data: RecordData): number[] {
  switch (data.type) {
    case 'A':
      return data.values.map(() => 4);
    case 'AAAA':
      return data.values.map(() => 16);
    case 'CNAME':
    case 'NS':
    case 'PTR':
      return data.values.map(nameWire);
    case 'MX':
      return data.values.map((v) => 2 + nameWire(v.exchange));
    case 'SRV':
      return data.values.map((v) => 6 + nameWire(v.target));
    case 'CAA':
      return data.values.map((v) => 2 + Buffer.byteLength(v.tag) + Buffer.byteLength(v.value));
    case 'TXT':
      return data.values.map((v) => {
        const bytes = Buffer.byteLength(v);
        return bytes + Math.max(1, Math.ceil(bytes / CHARSTRING));
      });
  }
}

/**
 * Bytes of the smallest response carrying the whole set at absolute `name` to a client with
 * EDNS: header, question (for a wildcard, the longest name it can answer), every record, OPT.
 */
export function rrsetResponseBytes(name: string, data: RecordData): number {
  const question = (name.startsWith('*.') ? MAX_NAME_WIRE : nameWire(name)) + QUESTION_FIXED;
  return rdataBytes(data).reduce((n, rdata) => n + OWNER_POINTER + RR_FIXED + rdata, HEADER_BYTES + question + OPT_BYTES);
}

/** Why the set at absolute `name` can never be served, or null: its answer would not fit in any DNS message. */
export function rrsetSizeProblem(name: string, data: RecordData): string | null {
  const bytes = rrsetResponseBytes(name, data);
  return bytes > MAX_DNS_MESSAGE
    ? `the set needs a ${bytes}-byte DNS response, more than the ${MAX_DNS_MESSAGE} bytes any DNS message (TCP) can carry: use fewer or shorter values`
    : null;
}

/** Response schema for a stored record (documentation and DB-row parsing). */
export const recordSchema = z.object({
  name: z.string().describe('Absolute owner name, lower-case, trailing dot'),
  zone: z.string(),
  type: z.enum(RECORD_TYPES),
  ttl: z.number().int(),
  values: z.array(z.unknown()),
  proxy: z.object({ enabled: z.boolean(), upstreams: z.array(z.string()) }).nullable(),
  service_name: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
});

export type Mx = z.infer<typeof mxValue>;
export type Srv = z.infer<typeof srvValue>;
export type Caa = z.infer<typeof caaValue>;

/** A committed change, as the store reports it to listeners (DNS index, later the proxy reconciler). */
export interface RecordChange {
  zone: string;
  /** SOA serial after the change. */
  serial: number;
  upserted: StoredRecord[];
  removed: { name: string; type: RecordType }[];
}

/** Pagination-free filter for listing. */
export const recordFilter = z
  .object({
    zone: z.string().optional(),
    name: z.string().optional().describe('Exact owner name (relative or absolute)'),
    type: z.enum(RECORD_TYPES).optional(),
    service_name: z.string().optional(),
    proxied: z.enum(['true', 'false']).optional(),
  })
  .strict();
export type RecordFilter = z.infer<typeof recordFilter>;

