// RRsets as the DNS layer holds them: the stored values plus their dns-packet RDATA, built once
// when a record set enters the index so that answering never converts values.
import type { Answer, CaaData, MxData, SoaData, SrvData } from 'dns-packet';
import type { StoredRecord } from '../model/record.js';
import type { ServedRecord, Soa } from './soa.js';

export type ServedType = ServedRecord['type'];

/** RDATA in the shape dns-packet encodes: names and addresses as strings, TXT as ≤255-byte chunks. */
export type RData = string | Buffer[] | MxData | SrvData | CaaData | SoaData;

export interface RRset {
  readonly type: ServedType;
  readonly ttl: number;
  /** Values as stored (ServedRecord.values); SOA holds `[Soa]`. */
  readonly values: readonly unknown[];
  readonly rdata: readonly RData[];
}

/** RFC 1035 §3.3: a character-string holds at most 255 octets. */
const MAX_CHARSTRING = 255;

/** Splits a TXT value into character-strings of at most 255 bytes (an empty value is one empty string). */
export function txtChunks(value: string): Buffer[] {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length === 0) return [bytes];
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += MAX_CHARSTRING) out.push(bytes.subarray(i, i + MAX_CHARSTRING));
  return out;
}

/** The RRset for a stored record set. */
export function rrsetOf(r: StoredRecord): RRset {
  const base = { ttl: r.ttl, values: r.values };
  switch (r.type) {
    case 'A':
    case 'AAAA':
    case 'CNAME':
    case 'PTR':
    case 'NS':
      return { ...base, type: r.type, rdata: r.values };
    case 'TXT':
      return { ...base, type: r.type, rdata: r.values.map(txtChunks) };
    case 'MX':
      return { ...base, type: r.type, rdata: r.values.map((v) => ({ preference: v.preference, exchange: v.exchange })) };
    case 'SRV':
      return { ...base, type: r.type, rdata: r.values.map((v) => ({ priority: v.priority, weight: v.weight, port: v.port, target: v.target })) };
    case 'CAA':
      // dns-packet's type lists three tags; any 1-15 letter tag encodes the same way.
      return { ...base, type: r.type, rdata: r.values.map((v) => ({ flags: v.flags, tag: v.tag as CaaData['tag'], value: v.value })) };
  }
}

export function soaRRset(soa: Soa): RRset {
  const { ttl, ...data } = soa;
  return { type: 'SOA', ttl, values: [soa], rdata: [data] };
}

export function simpleRRset(type: 'A' | 'AAAA' | 'NS', ttl: number, values: string[]): RRset {
  return { type, ttl, values, rdata: values };
}

/** The RRset's records with owner `owner` (written as given: the caller decides the case). */
export function answers(owner: string, set: RRset, ttl: number = set.ttl): Answer[] {
  return set.rdata.map((data) => ({ name: owner, type: set.type, class: 'IN', ttl, data }) as Answer);
}
