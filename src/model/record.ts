// Record sets (RRsets): one row per owner name + type, the unit the API, store and DNS share.
import { z } from 'zod';
import { TLS_MODES } from './route.js';
import { backendsFields, backendsIssues } from './route-backends.js';
import { balancingFields } from './route-balancing.js';
import { healthFields } from './route-health.js';
import { ipv4, ipv6, ownerNameInput, targetName, targetOrRoot, upstream } from './name.js';
import { canonicalIpv6, genericTypeProblem, parseRdata, TEXT_TYPES } from './rdata.js';
import type { ZoneSoa } from './zone.js';
import { recordViews, type RecordViews } from './view.js';

/** The types we name; any other data type is stored in the RFC 3597 generic form as `TYPEnnn`. */
export const RECORD_TYPES = ['A', 'AAAA', 'CNAME', 'TXT', 'MX', 'SRV', 'PTR', 'CAA', 'NS', 'DS', 'SSHFP', 'TLSA', 'SVCB', 'HTTPS'] as const;
export type NamedType = (typeof RECORD_TYPES)[number];
export type GenericType = `TYPE${number}`;
export type RecordType = NamedType | GenericType;

/** Codes of the types we name (and SOA), for `TYPEnnn` checks and the wire. */
export const TYPE_CODES: Readonly<Record<NamedType | 'SOA', number>> = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, CAA: 257, ...TEXT_TYPES };
const NAMED_CODES = new Map(Object.entries(TYPE_CODES).map(([k, v]) => [v, k]));

/** The wire code of a stored type. */
export function typeCode(type: RecordType | 'SOA'): number {
  return type.startsWith('TYPE') ? Number(type.slice(4)) : TYPE_CODES[type as NamedType];
}

/** Why `type` is no type a record set can have, or null. */
export function recordTypeProblem(type: string): string | null {
  if ((RECORD_TYPES as readonly string[]).includes(type)) return null;
  return genericTypeProblem(type, NAMED_CODES);
}

/** zod: a record type: a name we know or TYPE1-TYPE65535 (RFC 3597); upper-case. */
export const recordType = z
  .string()
  .transform((v) => v.toUpperCase())
  .superRefine((v, ctx) => {
    const problem = recordTypeProblem(v);
    if (problem) ctx.addIssue({ code: 'custom', message: `${problem}; named types: ${RECORD_TYPES.join(', ')}` });
  })
  .transform((v) => v as RecordType)
  .describe(`Record type: ${RECORD_TYPES.join(', ')}, or TYPEnnn (RFC 3597)`);

/** Default TTL for records that do not give one (seconds). */
export const DEFAULT_TTL = 300;
/** RFC 2181 §8: TTLs are 31-bit unsigned. */
const MAX_TTL = 2 ** 31 - 1;
/** Values in one RRset; a bound that keeps a single answer well below the 64 KiB TCP limit. */
const MAX_VALUES = 100;
/** A TXT value is split into 255-byte character-strings on the wire; this bounds the whole value. */
const MAX_TEXT = 4000;

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
    ...balancingFields,
    ...backendsFields,
    ...healthFields,
  })
  .strict()
  .superRefine((p, ctx) => {
    for (const issue of backendsIssues(p.upstreams, p.backends)) ctx.addIssue({ code: 'custom', ...issue });
    if (p.enabled && p.upstreams.length === 0)
      ctx.addIssue({ code: 'custom', path: ['upstreams'], message: 'at least one upstream is required when the proxy is enabled' });
  })
  .describe('Reverse-proxy settings for this name (applied by the Caddy reconciler)');
export type Proxy = z.infer<typeof proxySchema>;

const values = <T extends z.ZodType>(item: T) => z.array(item).min(1, 'at least one value is required').max(MAX_VALUES);

export const mxValue = z.object({ preference: u16, exchange: targetOrRoot }).strict();
export const srvValue = z.object({ priority: u16, weight: u16, port: u16, target: targetOrRoot }).strict();

/** RFC 7505 §3: a null MX (exchange ".") has preference 0 and is the only MX of its name. */
const mxValues = values(mxValue).superRefine((list, ctx) => {
  list.forEach((v, i) => {
    if (v.exchange !== '.') return;
    if (v.preference !== 0) ctx.addIssue({ code: 'custom', path: [i, 'preference'], message: 'a null MX (exchange ".") has preference 0 (RFC 7505)' });
    if (list.length > 1) ctx.addIssue({ code: 'custom', path: [i, 'exchange'], message: 'a null MX (exchange ".") must be the only MX of its name (RFC 7505)' });
  });
});

/** A value in presentation form (zone-file RDATA text) for `type`, stored in canonical form. */
const presentation = (type: string) =>
  z
    .string()
    .max(MAX_TEXT)
    .superRefine((v, ctx) => {
      const parsed = parseRdata(type, v);
      if ('error' in parsed) ctx.addIssue({ code: 'custom', message: `${type}: ${parsed.error}` });
    })
    .transform((v) => {
      const parsed = parseRdata(type, v);
      return 'error' in parsed ? v : parsed.text;
    })
    .describe(`${type} RDATA as in a zone file`);
export const caaValue = z
  .object({
    flags: z.number().int().min(0).max(255).default(0),
    tag: z.string().regex(/^[a-z0-9]{1,15}$/i, 'tag must be 1-15 letters or digits'),
    value: z.string().max(MAX_TEXT).describe('CAA value: any text (RFC 8659 §4.1.1)'),
  })
  .strict();

// One variant per type; `values` is typed per variant. `proxy` only makes sense on address records.
const common = {
  name: ownerNameInput,
  ttl: z.number().int('must be an integer').min(0).max(MAX_TTL).default(DEFAULT_TTL),
  service_name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'service_name may hold letters, digits, ".", "-", "_" (max 63)').optional(),
};
const knownInput = z.discriminatedUnion('type', [
  z.object({ ...common, type: z.literal('A'), values: values(ipv4), proxy: proxySchema.optional(), views: recordViews(ipv4).optional() }).strict(),
  z.object({ ...common, type: z.literal('AAAA'), values: values(ipv6), proxy: proxySchema.optional(), views: recordViews(ipv6).optional() }).strict(),
  z.object({ ...common, type: z.literal('CNAME'), values: z.array(targetName).refine((v) => v.length === 1, 'a CNAME has exactly one target') }).strict(),
  z.object({ ...common, type: z.literal('TXT'), values: values(txtValue) }).strict(),
  z.object({ ...common, type: z.literal('MX'), values: mxValues }).strict(),
  z.object({ ...common, type: z.literal('SRV'), values: values(srvValue) }).strict(),
  z.object({ ...common, type: z.literal('PTR'), values: values(targetName) }).strict(),
  z.object({ ...common, type: z.literal('CAA'), values: values(caaValue) }).strict(),
  z.object({ ...common, type: z.literal('NS'), values: values(targetName) }).strict(),
  ...(Object.keys(TEXT_TYPES) as (keyof typeof TEXT_TYPES)[]).map((t) => z.object({ ...common, type: z.literal(t), values: values(presentation(t)) }).strict()),
]);

/** Any other data type, RFC 3597 generic form (`\# 4 0A000001`). A named type fails here at once, so its own errors are the ones reported. */
const genericInput = z
  .object({
    ...common,
    type: z
      .string()
      .superRefine((v, ctx) => {
        const named = (RECORD_TYPES as readonly string[]).includes(v);
        const problem = named ? `${v} is a named type` : recordTypeProblem(v);
        if (problem) ctx.addIssue({ code: 'custom', message: named ? problem : `${problem}; named types: ${RECORD_TYPES.join(', ')}`, continue: !named });
      })
      .transform((v) => v as GenericType),
    values: z.array(z.string().max(MAX_TEXT)).min(1, 'at least one value is required').max(MAX_VALUES),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (recordTypeProblem(r.type)) return;
    r.values.forEach((v, i) => {
      const parsed = parseRdata(r.type, v);
      if ('error' in parsed) ctx.addIssue({ code: 'custom', path: ['values', i], message: parsed.error });
      else r.values[i] = parsed.text;
    });
  });

export const recordInput = z.union([knownInput, genericInput]);
export type RecordInput = z.infer<typeof recordInput>;

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** `{type, values}` for one record type, discriminated on `type`. */
export type RecordData = DistributiveOmit<RecordInput, 'name' | 'service_name' | 'proxy' | 'ttl' | 'views'>;

/** A stored record set, as the API returns it and the DNS server serves it. `name` is absolute and inside `zone`. */
export type StoredRecord = RecordData & {
  name: string;
  zone: string;
  ttl: number;
  proxy: Proxy | null;
  service_name: string | null;
  /** Split horizon (A/AAAA only): other values for clients in these views (src/model/view.ts). Absent: one answer for all. */
  views?: RecordViews;
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
  /** Per-view values (A/AAAA only); absent: none. */
  views?: RecordViews;
  /** What was changed on the way in (duplicate values folded), to tell the user. */
  notes?: string[];
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
    default:
      return data.values.map((v) => {
        const parsed = parseRdata(data.type, v);
        return 'error' in parsed ? 0 : parsed.wire.length;
      });
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
  type: z.string().describe(`${RECORD_TYPES.join(', ')} or TYPEnnn`),
  ttl: z.number().int(),
  values: z.array(z.unknown()),
  proxy: z.object({ enabled: z.boolean(), upstreams: z.array(z.string()) }).nullable(),
  service_name: z.string().nullable(),
  views: z.record(z.string(), z.object({ values: z.array(z.string()) })).optional().describe('Per-view values (split horizon), when the set has any'),
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
  /** The zone's SOA fields when this change set them (a zone import with a SOA line). */
  soa?: ZoneSoa;
}

/** Pagination-free filter for listing. */
export const recordFilter = z
  .object({
    zone: z.string().optional(),
    name: z.string().optional().describe('Exact owner name (relative or absolute)'),
    type: recordType.optional(),
    service_name: z.string().optional(),
    proxied: z.enum(['true', 'false']).optional(),
  })
  .strict();
export type RecordFilter = z.infer<typeof recordFilter>;


/** A value's identity in canonical form (RFC 2181 §5, RFC 4034 §6.2): equal keys, equal RDATA. */
function valueKey(type: RecordType, v: unknown): string {
  if (type === 'AAAA') return canonicalIpv6(v as string);
  if (type === 'TXT') return txtStrings(v as TxtValue).map((b) => `${b.length}:${b.toString('hex')}`).join(',');
  // Names are lower-case absolute and text types canonical once parsed; objects keep key order.
  return JSON.stringify(v);
}

/**
 * The set with duplicate values dropped (an RRset never holds the same RDATA twice, RFC 2181 §5),
 * the first spelling kept, and one note per value dropped (`values.3 repeats values.1 ("…")`).
 */
export function foldDuplicates<T extends RecordData>(data: T): { data: T; notes: string[]; dropped: { index: number; first: number }[] } {
  const seen = new Map<string, number>();
  const kept: unknown[] = [];
  const notes: string[] = [];
  const dropped: { index: number; first: number }[] = [];
  data.values.forEach((v: unknown, i: number) => {
    const key = valueKey(data.type, v);
    const first = seen.get(key);
    if (first === undefined) {
      seen.set(key, i);
      kept.push(v);
    } else {
      notes.push(`values.${i} repeats values.${first} (${JSON.stringify(v)}): stored once (RFC 2181 §5)`);
      dropped.push({ index: i, first });
    }
  });
  return notes.length ? { data: { ...data, values: kept }, notes, dropped } : { data, notes, dropped };
}
