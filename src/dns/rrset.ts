// RRsets as the DNS layer holds them: the stored values plus their wire RDATA, built once when a
// record set enters the index so that answering never converts values.
import dnsPacket from 'dns-packet';
import { typeCode, txtStrings, type StoredRecord } from '../model/record.js';
import { parseRdata } from '../model/rdata.js';
import type { ServedRecord, Soa } from './soa.js';
import { COMP, type Comp, type Rr } from './wire.js';

export type ServedType = ServedRecord['type'];

export interface RRset {
  readonly type: ServedType;
  /** The type's code on the wire. */
  readonly code: number;
  readonly ttl: number;
  /** Values as stored (ServedRecord.values); SOA holds `[Soa]`. */
  readonly values: readonly unknown[];
  /** Every RR's RDLENGTH + RDATA back to back, names uncompressed and lower-case; one per distinct value. */
  readonly wire: Buffer;
  /** RR count in `wire` (duplicate values are kept once, RFC 2181 §5). */
  readonly count: number;
  /** Index in `values` of each RR in `wire` when duplicates were dropped; absent when every value is there. */
  readonly kept?: readonly number[];
  /** Where RDATA holds names that may be compressed (RFC 3597 §4: the RFC 1035 types only). */
  readonly comp: Comp;
  /** Split horizon: the set served to clients in each view instead of this one (A/AAAA only). */
  readonly views?: ReadonlyMap<string, RRset>;
}

/** The set a client in `view` gets: its view's when the set has one, else the set itself. */
export function forView(set: RRset, view: string | null): RRset {
  return view === null || !set.views ? set : (set.views.get(view) ?? set);
}

interface Codec {
  encode(data: unknown, buf: Buffer, offset: number): Buffer;
  encodingLength(data: unknown): number;
}
const codec = (type: string): Codec => (dnsPacket as unknown as { record(t: string): Codec }).record(type);

/** RDLENGTH + RDATA of one value in dns-packet's data shape. */
function packed(type: string, data: unknown): Buffer {
  const c = codec(type);
  const buf = Buffer.allocUnsafe(c.encodingLength(data));
  c.encode(data, buf, 0);
  return buf;
}

/** RDLENGTH + RDATA of an IPv4 address (checked by the model): the common case, kept off dns-packet's generic path. */
function ipv4Wire(v: string): Buffer {
  const out = Buffer.allocUnsafe(6);
  out.writeUInt16BE(4, 0);
  let at = 2;
  for (const part of v.split('.')) out[at++] = Number(part);
  return out;
}

/** Joins RDLENGTH+RDATA pieces, dropping byte-equal duplicates (they are equal in canonical form: names are lower-case). */
function joined(pieces: Buffer[]): { wire: Buffer; count: number; kept?: number[] } {
  const kept: Buffer[] = [];
  const at: number[] = [];
  pieces.forEach((p, i) => {
    if (kept.some((k) => k.equals(p))) return;
    kept.push(p);
    at.push(i);
  });
  const wire = kept.length === 1 ? (kept[0] as Buffer) : Buffer.concat(kept);
  return kept.length === pieces.length ? { wire, count: kept.length } : { wire, count: kept.length, kept: at };
}

/** The wire RDATA (RDLENGTH-prefixed) of each stored value. */
function pieces(r: StoredRecord): Buffer[] {
  switch (r.type) {
    case 'A':
      return r.values.map(ipv4Wire);
    case 'AAAA':
    case 'CNAME':
    case 'PTR':
    case 'NS':
      return r.values.map((v) => packed(r.type, v));
    case 'TXT':
      return r.values.map((v) => packed('TXT', txtStrings(v)));
    case 'MX':
      return r.values.map((v) => packed('MX', { preference: v.preference, exchange: v.exchange }));
    case 'SRV':
      return r.values.map((v) => packed('SRV', { priority: v.priority, weight: v.weight, port: v.port, target: v.target }));
    case 'CAA':
      return r.values.map((v) => {
        const tag = Buffer.from(v.tag, 'latin1');
        const value = Buffer.from(v.value, 'utf8');
        const out = Buffer.allocUnsafe(4 + tag.length + value.length);
        out.writeUInt16BE(2 + tag.length + value.length, 0);
        out[2] = v.flags;
        out[3] = tag.length;
        tag.copy(out, 4);
        value.copy(out, 4 + tag.length);
        return out;
      });
    default:
      // Stored in canonical presentation form (src/model/rdata.ts), which always parses.
      return r.values.map((v) => {
        const parsed = parseRdata(r.type, v);
        const rdata = 'error' in parsed ? Buffer.alloc(0) : parsed.wire;
        const out = Buffer.allocUnsafe(2 + rdata.length);
        out.writeUInt16BE(rdata.length, 0);
        rdata.copy(out, 2);
        return out;
      });
  }
}

const COMP_OF: Partial<Record<ServedType, Comp>> = { NS: COMP.NAME, CNAME: COMP.NAME, PTR: COMP.NAME, MX: COMP.MX, SOA: COMP.SOA };

/** The RRset for a stored record set. */
export function rrsetOf(r: StoredRecord): RRset {
  const base = { type: r.type, code: typeCode(r.type), ttl: r.ttl, values: r.values, ...joined(pieces(r)), comp: COMP_OF[r.type] ?? COMP.NONE };
  if (!r.views || (r.type !== 'A' && r.type !== 'AAAA')) return base;
  const views = new Map<string, RRset>();
  for (const [name, v] of Object.entries(r.views)) views.set(name, { ...base, values: v.values, ...joined(pieces({ ...r, values: v.values })) });
  return { ...base, views };
}

export function soaRRset(soa: Soa): RRset {
  const { ttl, ...data } = soa;
  return { type: 'SOA', code: typeCode('SOA'), ttl, values: [soa], wire: packed('SOA', data), count: 1, comp: COMP.SOA };
}

export function simpleRRset(type: 'A' | 'AAAA' | 'NS', ttl: number, values: string[]): RRset {
  return { type, code: typeCode(type), ttl, values, ...joined(values.map((v) => (type === 'A' ? ipv4Wire(v) : packed(type, v)))), comp: COMP_OF[type] ?? COMP.NONE };
}

/** An SRV RRset built in memory (the proxy's plain names, src/dns/upstreams.ts). */
export function srvRRset(ttl: number, values: { priority: number; weight: number; port: number; target: string }[]): RRset {
  return { type: 'SRV', code: typeCode('SRV'), ttl, values, ...joined(values.map((v) => packed('SRV', { priority: v.priority, weight: v.weight, port: v.port, target: v.target }))), comp: COMP.NONE };
}

/** The RRset's records with owner `owner` (written as given: the caller decides the case). */
export function answers(owner: string, set: RRset, ttl: number = set.ttl): Rr[] {
  const out: Rr[] = [];
  for (let at = 0, i = 0; i < set.count; i++, at += 2 + set.wire.readUInt16BE(at))
    out.push({ name: owner, type: set.type, code: set.code, ttl, data: set.values[set.kept ? (set.kept[i] as number) : i], wire: set.wire, at, comp: set.comp });
  return out;
}
