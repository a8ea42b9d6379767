// Turns one received message into what the server should do: drop it, send bytes, send a zone
// transfer, or forward it. Lookup kinds become RCODE and flags here and nowhere else.
// Pure apart from reading the index; never throws on hostile input (the server still guards).
import { lookup, type LookupKind } from './lookup.js';
import { answers } from './rrset.js';
import { CLASS_ANY, CLASS_IN, EDNS_UDP_SIZE, FLAG, RCODE, TYPE, bareResponse, encodeResponse, parseQuery, typeName, type OptOut, type Query, type Rr } from './wire.js';
import { isReservedName, type PlainUpstreams } from './upstreams.js';
import type { ZoneIndex } from './zone.js';

/** RFC 1035 §4.2.1: the UDP limit for a client without EDNS. */
export const MIN_UDP_SIZE = 512;
/** RFC 1035 §4.2.2: TCP messages carry a 16-bit length. */
export const MAX_TCP_MESSAGE = 65535;
/** Target size of one AXFR message; well under the TCP maximum so a transfer streams in pieces. */
const AXFR_MESSAGE_BYTES = 16_384;

export type Transport = 'udp' | 'tcp';

export interface HandlerConfig {
  index: ZoneIndex;
  /** True when names outside our zones are forwarded (RA=1); false → REFUSED. */
  forwarding: boolean;
  /** Whether `address` (as the socket reports it) may have names outside our zones forwarded; others get REFUSED for them. */
  recursionAllowed(address: string): boolean;
  /** Whether `address` (as the socket reports it) may transfer zones. */
  transferAllowed(address: string): boolean;
  /**
   * Plain proxied names' backends (upstreams.ts), answered under the reserved labels only to
   * `allowed` addresses (this node's own: Caddy asks from one of them). Absent: zone data only.
   */
  plain?: { table: PlainUpstreams; allowed(address: string): boolean };
}

export type Outcome =
  | { kind: 'drop' }
  /** `cacheable`: derived from zone data and the query bytes alone, so equal queries get equal bytes until the index changes. */
  | { kind: 'reply'; message: Buffer; qtype: string; rcode: number; cacheable: boolean }
  | { kind: 'transfer'; messages: Buffer[]; qtype: string }
  | { kind: 'forward'; query: Query; limit: number; opt: OptOut | null; qtype: string };

const RCODE_OF: Record<LookupKind, number> = { success: RCODE.NOERROR, nodata: RCODE.NOERROR, delegation: RCODE.NOERROR, nxdomain: RCODE.NXDOMAIN, notauth: RCODE.REFUSED };

/** Response size limit: TCP 65535; UDP the client's EDNS size within [512, our 1232], else 512. */
function limitFor(q: Query, transport: Transport): number {
  if (transport === 'tcp') return MAX_TCP_MESSAGE;
  if (!q.edns) return MIN_UDP_SIZE;
  return Math.min(Math.max(q.edns.udpSize, MIN_UDP_SIZE), EDNS_UDP_SIZE);
}

/** `view`: the client's split-horizon view (null: none), as the server matched its address. */
export function handle(msg: Buffer, transport: Transport, remote: string, cfg: HandlerConfig, view: string | null = null): Outcome {
  const parsed = parseQuery(msg);
  if (parsed.kind === 'drop') return { kind: 'drop' };
  if (parsed.kind === 'error') {
    const message = bareResponse(parsed.id, (parsed.opcode << 11) | (parsed.rd ? FLAG.RD : 0), parsed.rcode, null, null);
    return { kind: 'reply', message, qtype: 'none', rcode: parsed.rcode, cacheable: false };
  }
  const q = parsed.query;
  const qtype = typeName(q.qtype);
  const opt: OptOut | null = q.edns ? { udpSize: EDNS_UDP_SIZE, dnssecOk: q.edns.dnssecOk } : null;
  const flags = (q.opcode << 11) | (q.rd ? FLAG.RD : 0) | (q.cd ? FLAG.CD : 0) | (cfg.forwarding ? FLAG.RA : 0);
  const reply = (rcode: number, cacheable = true): Outcome => ({ kind: 'reply', message: bareResponse(q.id, flags, rcode, q.question, opt), qtype, rcode, cacheable });

  // RFC 6891 §6.1.3: we speak EDNS version 0 only.
  if (q.edns && q.edns.version > 0) return reply(RCODE.BADVERS);
  if (q.opcode !== 0) return reply(RCODE.NOTIMP);
  if (q.qclass !== CLASS_IN && q.qclass !== CLASS_ANY) return reply(RCODE.REFUSED);
  if (q.qtype === TYPE.AXFR || q.qtype === TYPE.IXFR) {
    // Transfers only over TCP, only to listed addresses, only for a zone apex we serve. IXFR gets a full transfer (RFC 1995 §4).
    if (transport !== 'tcp' || !cfg.transferAllowed(remote)) return reply(RCODE.REFUSED, false);
    if (cfg.index.zoneFor(q.lname) !== q.lname) return reply(RCODE.NOTAUTH, false);
    return { kind: 'transfer', messages: transfer(cfg.index, q, flags | FLAG.AA, opt), qtype };
  }

  // Reserved names: never cached (the table changes without the index) and never forwarded.
  const reserved = isReservedName(q.lname);
  if (reserved) {
    const mine = cfg.plain?.allowed(remote) ? cfg.plain.table.answer(q.lname, q.qname, qtype) : null;
    if (mine) {
      const message = encodeResponse({ id: q.id, flags: flags | FLAG.AA, rcode: RCODE.NOERROR, question: q.question, qname: q.qname, answer: mine, authority: [], additional: [], opt }, limitFor(q, transport));
      return { kind: 'reply', message, qtype, rcode: RCODE.NOERROR, cacheable: false };
    }
  }
  const result = lookup(cfg.index, q.qname, qtype, view);
  if (reserved && result.kind === 'notauth') return reply(RCODE.REFUSED, false);
  if (result.kind === 'notauth') {
    if (!cfg.forwarding) return reply(RCODE.REFUSED);
    if (cfg.recursionAllowed(remote)) return { kind: 'forward', query: q, limit: limitFor(q, transport), opt, qtype };
    // Not for this client: no RA, and not cached (the same bytes from an allowed client are forwarded).
    return { kind: 'reply', message: bareResponse(q.id, flags & ~FLAG.RA, RCODE.REFUSED, q.question, opt), qtype, rcode: RCODE.REFUSED, cacheable: false };
  }
  const rcode = RCODE_OF[result.kind];
  // AA covers the answer for the question's name; a pure referral is not authoritative.
  const aa = result.kind !== 'delegation' || result.answer.length > 0 ? FLAG.AA : 0;
  const message = encodeResponse({ id: q.id, flags: flags | aa, rcode, question: q.question, qname: q.qname, answer: result.answer, authority: result.authority, additional: result.additional, required: result.required, opt }, limitFor(q, transport));
  return { kind: 'reply', message, qtype, rcode, cacheable: !reserved };
}

/** Upper bound of the bytes `a` takes (owner uncompressed). */
const rrBytes = (a: Rr): number => Buffer.byteLength(a.name) + 1 + 10 + a.wire.readUInt16BE(a.at);

/** AXFR (RFC 5936): SOA, every record, SOA again, packed into messages of about AXFR_MESSAGE_BYTES; the question only in the first. */
function transfer(index: ZoneIndex, q: Query, flags: number, opt: OptOut | null): Buffer[] {
  const zone = q.lname;
  const all: Rr[] = [];
  for (const { name, set } of index.servedRRsets(zone)) all.push(...answers(name, set));
  const soa = all[0];
  if (soa) all.push(soa);
  const messages: Buffer[] = [];
  let batch: Rr[] = [];
  let bytes = 0;
  const flush = () => {
    const first = messages.length === 0;
    messages.push(encodeResponse({ id: q.id, flags, rcode: RCODE.NOERROR, question: first ? q.question : null, qname: null, answer: batch, authority: [], additional: [], opt }, MAX_TCP_MESSAGE));
    batch = [];
    bytes = 0;
  };
  for (const a of all) {
    const size = rrBytes(a);
    if (batch.length && bytes + size > AXFR_MESSAGE_BYTES) flush();
    batch.push(a);
    bytes += size;
  }
  flush();
  return messages;
}
