// DNS wire format for the serving path: parse a query's header, question and OPT straight from
// the bytes, and encode responses with dns-packet's RR codec. Pure functions; nothing here
// throws on hostile input (parsers return a verdict instead).
import dnsPacket from 'dns-packet';
import type { Answer } from 'dns-packet';

/** RR type codes we name; any other type is shown as `TYPE<n>` (RFC 3597). */
export const TYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, DS: 43, IXFR: 251, AXFR: 252, ANY: 255, CAA: 257 } as const;
const TYPE_NAMES = new Map<number, string>(Object.entries(TYPE).map(([k, v]) => [v, k]));

export function typeName(code: number): string {
  return TYPE_NAMES.get(code) ?? `TYPE${code}`;
}

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, NOTAUTH: 9, BADVERS: 16 } as const;
const RCODE_NAMES = new Map<number, string>(Object.entries(RCODE).map(([k, v]) => [v, k]));

export function rcodeName(code: number): string {
  return RCODE_NAMES.get(code) ?? `RCODE${code}`;
}

/** UDP payload size we advertise and the most we send over UDP (DNS Flag Day 2020: no fragmentation). */
export const EDNS_UDP_SIZE = 1232;
export const CLASS_IN = 1;
export const CLASS_ANY = 255;
export const HEADER_BYTES = 12;
/** RFC 1035 §2.3.4: a name is at most 255 octets on the wire. */
const MAX_NAME_WIRE = 255;

// Header flag bits (second 16-bit word).
export const FLAG = { QR: 0x8000, AA: 0x0400, TC: 0x0200, RD: 0x0100, RA: 0x0080, AD: 0x0020, CD: 0x0010 } as const;
/** EDNS flags word: DNSSEC OK (RFC 3225). */
const EDNS_DO = 0x8000;

export interface Edns {
  /** Requestor's UDP payload size as sent (not yet clamped). */
  udpSize: number;
  version: number;
  dnssecOk: boolean;
}

/** A parsed query. `qname` is the name as asked (case kept, trailing dot, `\DDD` escapes for odd bytes); `lname` is its lower-case form. */
export interface Query {
  id: number;
  opcode: number;
  rd: boolean;
  cd: boolean;
  qname: string;
  lname: string;
  qtype: number;
  qclass: number;
  /** The question section bytes exactly as received (name, type, class). */
  question: Buffer;
  edns: Edns | null;
}

/**
 * What to do with a received message:
 * - `drop`: not a query we may answer (too short, or a response — answering responses loops);
 * - `error`: header readable, rest not; answer with `rcode` and no question;
 * - `query`: a well-formed query (any opcode; the caller checks it).
 */
export type ParseResult =
  | { kind: 'drop' }
  | { kind: 'error'; id: number; opcode: number; rd: boolean; rcode: number; edns: Edns | null }
  | { kind: 'query'; query: Query };

/**
 * Presentation text of one label. Bytes outside 0x21–0x7e, `.` and `\` become `\DDD`, so the
 * text never holds a `.` inside a label and cannot equal any name we store.
 */
function labelText(buf: Buffer, start: number, end: number): string {
  let plain = true;
  for (let i = start; i < end; i++) {
    const b = buf[i] as number;
    if (b < 0x21 || b > 0x7e || b === 0x2e || b === 0x5c) {
      plain = false;
      break;
    }
  }
  if (plain) return buf.toString('latin1', start, end);
  let out = '';
  for (let i = start; i < end; i++) {
    const b = buf[i] as number;
    if (b < 0x21 || b > 0x7e || b === 0x2e || b === 0x5c) out += `\\${String(b).padStart(3, '0')}`;
    else out += String.fromCharCode(b);
  }
  return out;
}

/**
 * Reads an uncompressed name at `offset` (a query's question may not use pointers).
 * Returns the presentation text (trailing dot) and the offset after the name, or null.
 */
function readQuestionName(buf: Buffer, offset: number): { text: string; end: number } | null {
  let text = '';
  let at = offset;
  for (;;) {
    if (at >= buf.length) return null;
    const len = buf[at] as number;
    if (len === 0) break;
    if (len > 63) return null; // pointer or reserved label type
    if (at + 1 + len > buf.length) return null;
    text += `${labelText(buf, at + 1, at + 1 + len)}.`;
    at += 1 + len;
    if (at - offset + 1 > MAX_NAME_WIRE) return null;
  }
  return { text: text === '' ? '.' : text, end: at + 1 };
}

/** Offset after the (possibly compressed) name at `offset`, or -1 when it runs off the end. */
export function skipName(buf: Buffer, offset: number): number {
  let at = offset;
  for (let labels = 0; labels < 128; labels++) {
    if (at >= buf.length) return -1;
    const len = buf[at] as number;
    if (len === 0) return at + 1;
    if ((len & 0xc0) === 0xc0) return at + 2 <= buf.length ? at + 2 : -1;
    if (len > 63) return -1;
    at += 1 + len;
  }
  return -1;
}

/** One resource record's layout: where it starts, its type, where its TTL sits, where its RDATA starts and ends. */
export interface RrSpan {
  start: number;
  type: number;
  ttlAt: number;
  rdata: number;
  end: number;
}

/** Appends the layout of `count` RRs starting at `offset` to `out`; returns the offset after them, or -1 when they run off the end. */
export function walkRrs(buf: Buffer, offset: number, count: number, out: RrSpan[]): number {
  let at = offset;
  for (let i = 0; i < count; i++) {
    const start = at;
    at = skipName(buf, at);
    if (at < 0 || at + 10 > buf.length) return -1;
    const type = buf.readUInt16BE(at);
    const rdlen = buf.readUInt16BE(at + 8);
    const rdata = at + 10;
    if (rdata + rdlen > buf.length) return -1;
    out.push({ start, type, ttlAt: at + 4, rdata, end: rdata + rdlen });
    at = rdata + rdlen;
  }
  return at;
}

/** Parses a received message. Never throws. */
export function parseQuery(msg: Buffer): ParseResult {
  if (msg.length < HEADER_BYTES) return { kind: 'drop' };
  const flags = msg.readUInt16BE(2);
  if (flags & FLAG.QR) return { kind: 'drop' };
  const id = msg.readUInt16BE(0);
  const opcode = (flags >> 11) & 0xf;
  const rd = (flags & FLAG.RD) !== 0;
  const qdcount = msg.readUInt16BE(4);
  const an = msg.readUInt16BE(6);
  const ns = msg.readUInt16BE(8);
  const ar = msg.readUInt16BE(10);
  const formerr = (edns: Edns | null = null): ParseResult => ({ kind: 'error', id, opcode, rd, rcode: RCODE.FORMERR, edns });
  if (qdcount !== 1) return formerr();
  const name = readQuestionName(msg, HEADER_BYTES);
  if (!name || name.end + 4 > msg.length) return formerr();
  const qtype = msg.readUInt16BE(name.end);
  const qclass = msg.readUInt16BE(name.end + 2);
  const qend = name.end + 4;
  // Skip answer and authority (a plain query has none), then look for OPT in additional.
  const spans: RrSpan[] = [];
  const afterNs = walkRrs(msg, qend, an + ns, spans);
  if (afterNs < 0) return formerr();
  spans.length = 0;
  if (walkRrs(msg, afterNs, ar, spans) < 0) return formerr();
  let edns: Edns | null = null;
  for (const rr of spans) {
    if (rr.type !== TYPE.OPT) continue;
    // RFC 6891 §6.1.1: one OPT, owned by the root.
    if (edns || msg[rr.start] !== 0) return formerr(null);
    edns = { udpSize: msg.readUInt16BE(rr.start + 3), version: msg[rr.ttlAt + 1] as number, dnssecOk: (msg.readUInt16BE(rr.ttlAt + 2) & EDNS_DO) !== 0 };
  }
  const question = msg.subarray(HEADER_BYTES, qend);
  return {
    kind: 'query',
    query: { id, opcode, rd, cd: (flags & FLAG.CD) !== 0, qname: name.text, lname: asciiLower(name.text), qtype, qclass, question, edns },
  };
}

function asciiLower(s: string): string {
  return /[A-Z]/.test(s) ? s.replace(/[A-Z]+/g, (m) => m.toLowerCase()) : s;
}

// dns-packet's per-RR codec is exported at runtime but missing from @types/dns-packet.
interface RrCodec {
  encode(a: Answer, buf: Buffer, offset: number): Buffer;
  encodingLength(a: Answer): number;
}
interface EncodeBytes {
  bytes: number;
}
const rrCodec = (dnsPacket as unknown as { answer: RrCodec & { encode: EncodeBytes } }).answer;
const nameCodec = (dnsPacket as unknown as { name: { encodingLength(n: string): number } }).name;

/** Our OPT: the payload size we accept and DO echoed (RFC 3225). The extended RCODE comes from `Response.rcode`. */
export interface OptOut {
  udpSize: number;
  dnssecOk: boolean;
}
const OPT_BYTES = 11;

export interface Response {
  id: number;
  /** Header flags without RCODE; QR is added here. */
  flags: number;
  /** Full RCODE (values above 15 go into the OPT; they need `opt`). */
  rcode: number;
  /** Raw question section to echo, or null for none. */
  question: Buffer | null;
  /** Owner names equal to this string are written as a pointer to the question name. */
  qname: string | null;
  answer: readonly Answer[];
  authority: readonly Answer[];
  additional: readonly Answer[];
  opt: OptOut | null;
}

function rrLength(a: Answer, qname: string | null): number {
  const full = rrCodec.encodingLength(a);
  return a.name === qname ? full - nameCodec.encodingLength(a.name) + 2 : full;
}

function writeRr(a: Answer, qname: string | null, buf: Buffer, at: number): number {
  if (a.name !== qname) {
    rrCodec.encode(a, buf, at);
    return at + rrCodec.encode.bytes;
  }
  // Encode with the root as owner one byte further on, then put a pointer to offset 12 over it.
  rrCodec.encode({ ...a, name: '.' }, buf, at + 1);
  buf[at] = 0xc0;
  buf[at + 1] = HEADER_BYTES;
  return at + 1 + rrCodec.encode.bytes;
}

function writeHeader(buf: Buffer, r: Response, counts: [number, number, number, number], tc: boolean): void {
  buf.writeUInt16BE(r.id, 0);
  buf.writeUInt16BE((r.flags | FLAG.QR | (tc ? FLAG.TC : 0) | (r.rcode & 0xf)) & 0xffff, 2);
  buf.writeUInt16BE(counts[0], 4);
  buf.writeUInt16BE(counts[1], 6);
  buf.writeUInt16BE(counts[2], 8);
  buf.writeUInt16BE(counts[3], 10);
}

function writeOpt(buf: Buffer, at: number, opt: OptOut, rcode: number): number {
  buf[at] = 0;
  buf.writeUInt16BE(TYPE.OPT, at + 1);
  buf.writeUInt16BE(opt.udpSize, at + 3);
  buf[at + 5] = (rcode >> 4) & 0xff;
  buf[at + 6] = 0; // EDNS version 0
  buf.writeUInt16BE(opt.dnssecOk ? EDNS_DO : 0, at + 7);
  buf.writeUInt16BE(0, at + 9);
  return at + OPT_BYTES;
}

/**
 * Encodes `r`. When the result would exceed `limit` bytes it returns instead a TC=1 response
 * carrying only the question and OPT (RFC 2181 §9: the client retries over TCP).
 */
export function encodeResponse(r: Response, limit: number): Buffer {
  const qlen = r.question ? r.question.length : 0;
  const optLen = r.opt ? OPT_BYTES : 0;
  let size = HEADER_BYTES + qlen + optLen;
  for (const a of r.answer) size += rrLength(a, r.qname);
  for (const a of r.authority) size += rrLength(a, r.qname);
  for (const a of r.additional) size += rrLength(a, r.qname);
  const tc = size > limit;
  if (tc) size = HEADER_BYTES + qlen + optLen;
  const buf = Buffer.alloc(size);
  const counts: [number, number, number, number] = tc
    ? [r.question ? 1 : 0, 0, 0, r.opt ? 1 : 0]
    : [r.question ? 1 : 0, r.answer.length, r.authority.length, r.additional.length + (r.opt ? 1 : 0)];
  writeHeader(buf, r, counts, tc);
  let at = HEADER_BYTES;
  if (r.question) at += r.question.copy(buf, at);
  if (!tc) for (const section of [r.answer, r.authority, r.additional]) for (const a of section) at = writeRr(a, r.qname, buf, at);
  if (r.opt) writeOpt(buf, at, r.opt, r.rcode);
  return buf;
}

/** Bytes `a` takes on the wire (owner written in full). */
export function answerBytes(a: Answer): number {
  return rrCodec.encodingLength(a);
}

/** A minimal response (no records): errors and TC replies. `question` may be null. */
export function bareResponse(id: number, flags: number, rcode: number, question: Buffer | null, opt: OptOut | null): Buffer {
  return encodeResponse({ id, flags, rcode, question, qname: null, answer: [], authority: [], additional: [], opt }, Infinity);
}
