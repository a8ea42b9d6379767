// DNS wire format for the serving path: parse a query's header, question and OPT straight from
// the bytes, and encode responses with dns-packet's RR codec. Pure functions; nothing here
// throws on hostile input (parsers return a verdict instead).

/** RR type codes we name; any other type is shown as `TYPE<n>` (RFC 3597). */
export const TYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, DS: 43, SSHFP: 44, TLSA: 52, SVCB: 64, HTTPS: 65, IXFR: 251, AXFR: 252, ANY: 255, CAA: 257 } as const;
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
  // An opcode we do not implement is NOTIMP whatever follows the header (RFC 1035 §4.1.1): the
  // question of a STATUS, NOTIFY or UPDATE need not look like a query's, or be there at all.
  const formerr = (edns: Edns | null = null): ParseResult => ({ kind: 'error', id, opcode, rd, rcode: opcode === 0 ? RCODE.FORMERR : RCODE.NOTIMP, edns });
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

/** Our OPT: the payload size we accept and DO echoed (RFC 3225). The extended RCODE comes from `Response.rcode`. */
export interface OptOut {
  udpSize: number;
  dnssecOk: boolean;
}
const OPT_BYTES = 11;

/** Where an RR's RDATA holds names that may be compressed (RFC 3597 §4: only the RFC 1035 types). */
export const COMP = { NONE: 0, NAME: 1, MX: 2, SOA: 3 } as const;
export type Comp = (typeof COMP)[keyof typeof COMP];

/**
 * One resource record to write: owner (presentation text, `\DDD` escapes allowed), type, TTL,
 * and its RDLENGTH + RDATA at `at` in `wire` (names there uncompressed, lower-case; shared by the RRset).
 */
export interface Rr {
  name: string;
  /** Type name (`A`, `TYPE65534`) and code. */
  type: string;
  code: number;
  ttl: number;
  /** The value as stored (`ServedRecord.values[i]`), for readers that want it without decoding. */
  data: unknown;
  wire: Buffer;
  at: number;
  comp: Comp;
}

export interface Response {
  id: number;
  /** Header flags without RCODE; QR is added here. */
  flags: number;
  /** Full RCODE (values above 15 go into the OPT; they need `opt`). */
  rcode: number;
  /** Raw question section to echo, or null for none. */
  question: Buffer | null;
  /** The question name as presentation text (`Query.qname`): owners equal to it point at the question. */
  qname: string | null;
  answer: readonly Rr[];
  authority: readonly Rr[];
  additional: readonly Rr[];
  /** How many records at the start of `additional` must fit (a referral's in-domain glue, RFC 9471); the rest is optional. */
  required?: number;
  opt: OptOut | null;
}

/** RFC 1035 §4.1.4: a compression pointer holds a 14-bit offset. */
const MAX_POINTER = 0x3fff;
/** The longest record: 255-byte owner, fixed fields, 65535 bytes of RDATA. */
const MAX_RR = 255 + 10 + 65535;
/** Responses are built here, then copied out: room for a full TCP message plus one record that overshoots. */
const scratch = Buffer.allocUnsafe(65535 + MAX_RR);

/** Writes one message with name compression (RFC 1035 §4.1.4); keys are lower-case presentation suffixes. */
class Writer {
  at = HEADER_BYTES;
  private readonly names = new Map<string, number>();
  /** Keys added since the start, so a record that does not fit can be taken back whole. */
  private readonly added: string[] = [];

  constructor(readonly buf: Buffer) {}

  mark(): [number, number] {
    return [this.at, this.added.length];
  }

  rollback([at, added]: [number, number]): void {
    this.at = at;
    while (this.added.length > added) this.names.delete(this.added.pop() as string);
  }

  private remember(key: string, offset: number): void {
    if (offset > MAX_POINTER || this.names.has(key)) return;
    this.names.set(key, offset);
    this.added.push(key);
  }

  /** The question's name (at offset 12, uncompressed) becomes a target for later names. */
  question(qname: string): void {
    const lower = qname.toLowerCase();
    let offset = HEADER_BYTES;
    for (let i = 0; i < lower.length - 1; ) {
      const dot = lower.indexOf('.', i);
      this.remember(lower.slice(i), offset);
      offset += 1 + labelBytes(qname.slice(i, dot)).length;
      i = dot + 1;
    }
  }

  /** Writes presentation name `name` (absolute), ending in a pointer when a suffix was written before. */
  name(name: string): void {
    const lower = name.toLowerCase();
    const buf = this.buf;
    for (let i = 0; i < lower.length - 1; ) {
      const suffix = lower.slice(i);
      const target = this.names.get(suffix);
      if (target !== undefined) {
        buf[this.at] = 0xc0 | (target >> 8);
        buf[this.at + 1] = target & 0xff;
        this.at += 2;
        return;
      }
      this.remember(suffix, this.at);
      const dot = lower.indexOf('.', i);
      const label = name.slice(i, dot);
      if (label.includes('\\')) {
        const bytes = labelBytes(label);
        buf[this.at] = bytes.length;
        bytes.copy(buf, this.at + 1);
        this.at += 1 + bytes.length;
      } else {
        buf[this.at] = label.length;
        this.at += 1 + buf.write(label, this.at + 1, 'latin1');
      }
      i = dot + 1;
    }
    buf[this.at++] = 0;
  }

  /** Writes the uncompressed wire name at `from` in `src` with compression; returns the offset after it in `src`. */
  wireName(src: Buffer, from: number): number {
    let text = '';
    for (let i = from; src[i] !== 0; i += 1 + (src[i] as number)) text += `${src.toString('latin1', i + 1, i + 1 + (src[i] as number))}.`;
    this.name(text === '' ? '.' : text);
    return from + (text === '' ? 1 : Buffer.byteLength(text, 'latin1') + 1);
  }

  rr(rr: Rr, qname: string | null): void {
    const buf = this.buf;
    if (rr.name === qname) {
      buf[this.at] = 0xc0;
      buf[this.at + 1] = HEADER_BYTES;
      this.at += 2;
    } else this.name(rr.name);
    buf.writeUInt16BE(rr.code, this.at);
    buf.writeUInt16BE(CLASS_IN, this.at + 2);
    buf.writeUInt32BE(rr.ttl, this.at + 4);
    const lenAt = this.at + 8;
    const src = rr.wire;
    const len = src.readUInt16BE(rr.at);
    const from = rr.at + 2;
    this.at = lenAt + 2;
    if (rr.comp === COMP.NONE) this.at += src.copy(buf, this.at, from, from + len);
    else {
      let i = from;
      if (rr.comp === COMP.MX) {
        this.at += src.copy(buf, this.at, i, i + 2);
        i += 2;
      }
      i = this.wireName(src, i);
      if (rr.comp === COMP.SOA) {
        i = this.wireName(src, i);
        this.at += src.copy(buf, this.at, i, from + len);
      }
    }
    buf.writeUInt16BE(this.at - lenAt - 2, lenAt);
  }
}

/** Bytes of one label given as presentation text (`\DDD` and `\X` escapes decoded). */
function labelBytes(label: string): Buffer {
  if (!label.includes('\\')) return Buffer.from(label, 'latin1');
  const out: number[] = [];
  for (let i = 0; i < label.length; i++) {
    const c = label.charCodeAt(i);
    if (c !== 0x5c) out.push(c);
    else if (/^\d{3}$/.test(label.slice(i + 1, i + 4))) {
      out.push(Number(label.slice(i + 1, i + 4)));
      i += 3;
    } else out.push(label.charCodeAt(++i));
  }
  return Buffer.from(out);
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
 * Encodes `r` with name compression in at most `limit` bytes. Answer, authority and the first
 * `required` additional records must fit; otherwise the result is a TC=1 response carrying only
 * the question and OPT (RFC 2181 §9: the client retries over TCP). The rest of the additional
 * section is filled only as far as it fits, without TC (RFC 2181 §9).
 */
export function encodeResponse(r: Response, limit: number): Buffer {
  const optLen = r.opt ? OPT_BYTES : 0;
  const room = limit - optLen;
  const w = new Writer(scratch);
  if (r.question) {
    w.at += r.question.copy(scratch, HEADER_BYTES);
    if (r.qname !== null) w.question(r.qname);
  }
  const headerEnd = w.at;
  let tc = false;
  for (const section of [r.answer, r.authority])
    for (const rr of section) {
      w.rr(rr, r.qname);
      if (w.at > room) tc = true;
      if (tc) break;
    }
  const required = r.required ?? 0;
  let extra = 0;
  for (let i = 0; i < r.additional.length && !tc; i++) {
    const mark = w.mark();
    w.rr(r.additional[i] as Rr, r.qname);
    if (w.at <= room) extra++;
    else if (i < required) tc = true;
    else w.rollback(mark);
  }
  if (tc) w.at = headerEnd;
  const counts: [number, number, number, number] = tc
    ? [r.question ? 1 : 0, 0, 0, r.opt ? 1 : 0]
    : [r.question ? 1 : 0, r.answer.length, r.authority.length, extra + (r.opt ? 1 : 0)];
  writeHeader(scratch, r, counts, tc);
  const end = r.opt ? writeOpt(scratch, w.at, r.opt, r.rcode) : w.at;
  return Buffer.from(scratch.subarray(0, end));
}

/** A minimal response (no records): errors and TC replies. `question` may be null. */
export function bareResponse(id: number, flags: number, rcode: number, question: Buffer | null, opt: OptOut | null): Buffer {
  return encodeResponse({ id, flags, rcode, question, qname: null, answer: [], authority: [], additional: [], opt }, Infinity);
}
