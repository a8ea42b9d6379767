// Record sets (RRsets): one row per owner name + type, the unit the API, store and DNS share.
import { z } from 'zod';
import { TLS_MODES } from '../proxy/types.js';
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

/** RFC 1035 §3.3: a <character-string> holds at most 255 octets. */
export const CHARSTRING_BYTES = 255;

/** One TXT character-string kept as given: text (UTF-8 on the wire), or `{hex}` for bytes that are not UTF-8 text. */
const txtString = z.union([
  z.string().refine((v) => Buffer.byteLength(v) <= CHARSTRING_BYTES, `a string in a list may hold at most ${CHARSTRING_BYTES} bytes (UTF-8)`),
  z
    .object({ hex: z.string().regex(/^(?:[0-9a-f]{2}){0,255}$/i, `must be hex digits, at most ${CHARSTRING_BYTES} bytes`) })
    .strict()
    .describe('Bytes that are not UTF-8 text, in hex'),
]);
export type TxtString = z.infer<typeof txtString>;

/**
 * A TXT value: one text, split into 255-byte character-strings on the wire; or a list of
 * character-strings kept as given (RFC 1035 §3.3.14; DNS-SD, RFC 6763 §6, reads each as a key=value).
 */
export const txtValue = z.union([
  z.string().max(MAX_TEXT),
  z
    .array(txtString)
    .min(1, 'a list holds at least one string')
    .refine((l) => l.reduce((n, x) => n + 1 + txtStringBytes(x).length, 0) <= MAX_TEXT + 16, `the strings may hold at most ${MAX_TEXT} bytes in all`),
]);
export type TxtValue = z.infer<typeof txtValue>;

/** The bytes of one TXT character-string. */
export function txtStringBytes(s: TxtString): Buffer {
  return typeof s === 'string' ? Buffer.from(s, 'utf8') : Buffer.from(s.hex, 'hex');
}

/** The character-strings of a TXT value as they go on the wire: a text cut every 255 bytes (an empty one is one empty string), a list as given. */
export function txtStrings(v: TxtValue): Buffer[] {
  if (Array.isArray(v)) return v.map(txtStringBytes);
  const bytes = Buffer.from(v, 'utf8');
  if (bytes.length === 0) return [bytes];
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += CHARSTRING_BYTES) out.push(bytes.subarray(i, i + CHARSTRING_BYTES));
  return out;
}

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
  z.object({ ...common, type: z.literal('TXT'), values: values(txtValue) }).strict(),
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
      return data.values.map((v) => txtStrings(v).reduce((n, b) => n + 1 + b.length, 0));
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

