// Test zones (RFC 2606 / RFC 5737 / RFC 3849 names and addresses) and helpers to query a live server.
import { execFile, execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { Writable } from 'node:stream';
import dnsPacket from 'dns-packet';
import winston from 'winston';
import type { RecordData, StoredRecord } from '../../src/model/record.js';
import { DnsServer, type DnsServerOptions } from '../../src/dns/server.js';
import type { ZoneSettings } from '../../src/dns/soa.js';
import { ZoneIndex } from '../../src/dns/zone.js';

export const HOME = 'home.arpa.';
export const LAB = 'lab.example.';
export const REV = '2.0.192.in-addr.arpa.';
export const SERIAL = 2026010101;

export const ZONES: ZoneSettings[] = [
  { name: HOME, nameservers: ['ns1.home.arpa.'], hostmaster: 'hostmaster.home.arpa.', nodeIp: '192.0.2.1' },
  { name: LAB, nameservers: ['ns1.home.arpa.'], hostmaster: 'hostmaster.lab.example.', nodeIp: '192.0.2.1' },
  { name: REV, nameservers: ['ns1.home.arpa.'], hostmaster: 'hostmaster.home.arpa.', nodeIp: '192.0.2.1' },
];

/** A stored record set; `name` is relative to `zone` unless it ends with a dot (`@` is the apex). */
export function rec(zone: string, name: string, data: RecordData, ttl = 300): StoredRecord {
  const owner = name === '@' ? zone : name.endsWith('.') ? name : `${name}.${zone}`;
  return { ...data, name: owner, zone, ttl, proxy: null, service_name: null, created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-01T00:00:00Z' };
}

/** Sixty TXT strings: far beyond 512 and 1232 bytes, well inside 64 KiB. */
export const BIG_TXT = Array.from({ length: 60 }, (_, i) => `value-${String(i).padStart(2, '0')}-${'x'.repeat(40)}`);
export const LONG_TXT = `${'a'.repeat(255)}${'b'.repeat(255)}${'c'.repeat(90)}`;

export function homeRecords(): StoredRecord[] {
  const h = (name: string, data: RecordData, ttl?: number) => rec(HOME, name, data, ttl);
  return [
    h('llm', { type: 'A', values: ['192.0.2.10'] }),
    h('llm', { type: 'AAAA', values: ['2001:db8::10'] }),
    h('www', { type: 'CNAME', values: ['llm.home.arpa.'] }),
    h('chain1', { type: 'CNAME', values: ['chain2.home.arpa.'] }),
    h('chain2', { type: 'CNAME', values: ['chain3.home.arpa.'] }),
    h('chain3', { type: 'CNAME', values: ['llm.home.arpa.'] }),
    h('loop1', { type: 'CNAME', values: ['loop2.home.arpa.'] }),
    h('loop2', { type: 'CNAME', values: ['loop1.home.arpa.'] }),
    h('alias', { type: 'CNAME', values: ['app.lab.example.'] }),
    h('ext', { type: 'CNAME', values: ['www.example.com.'] }),
    h('dangling', { type: 'CNAME', values: ['gone.home.arpa.'] }),
    h('long', { type: 'TXT', values: [LONG_TXT] }),
    h('big', { type: 'TXT', values: BIG_TXT }),
    h('@', { type: 'MX', values: [{ preference: 10, exchange: 'mail.home.arpa.' }] }),
    h('@', { type: 'CAA', values: [{ flags: 0, tag: 'issue', value: 'letsencrypt.org' }] }),
    h('mail', { type: 'A', values: ['192.0.2.25'] }),
    h('_sip._tcp', { type: 'SRV', values: [{ priority: 10, weight: 5, port: 5060, target: 'sip.home.arpa.' }] }),
    h('sip', { type: 'A', values: ['192.0.2.26'] }),
    h('a.b', { type: 'A', values: ['192.0.2.30'] }),
    h('*.wild', { type: 'A', values: ['192.0.2.40'] }),
    h('*.wild', { type: 'TXT', values: ['wild'] }),
    h('exists.wild', { type: 'TXT', values: ['here'] }),
    h('deep.ent.wild', { type: 'A', values: ['192.0.2.41'] }),
    h('sub', { type: 'NS', values: ['ns.sub.home.arpa.'] }),
    h('ns.sub', { type: 'A', values: ['192.0.2.53'] }),
  ];
}

export function buildIndex(): ZoneIndex {
  const index = new ZoneIndex(ZONES);
  index.load(HOME, SERIAL, homeRecords());
  index.load(LAB, SERIAL, [rec(LAB, 'app', { type: 'A', values: ['198.51.100.5'] })]);
  index.load(REV, SERIAL, [rec(REV, '10', { type: 'PTR', values: ['llm.home.arpa.'] })]);
  return index;
}

/** A logger that keeps its lines (level `info` and up) in `lines` instead of printing them. */
export function captureLog(): { log: winston.Logger; lines: { level: string; message: string }[] } {
  const lines: { level: string; message: string }[] = [];
  const stream = new Writable({
    objectMode: true,
    write(info: { level: string; message: string }, _enc, cb) {
      lines.push(info);
      cb();
    },
  });
  return { log: winston.createLogger({ level: 'info', transports: [new winston.transports.Stream({ stream })] }), lines };
}

/** A started server on 127.0.0.1, port 0, logging into `captureLog()` unless `log` is given. */
export async function startServer(opts: Partial<DnsServerOptions> = {}): Promise<{ server: DnsServer; port: number; index: ZoneIndex }> {
  const index = opts.index ?? buildIndex();
  const server = new DnsServer({ host: '127.0.0.1', port: 0, index, upstreams: [], axfrAllow: ['127.0.0.1'], log: captureLog().log, ...opts });
  await server.start();
  return { server, port: server.address().port, index };
}

// ---- dig ------------------------------------------------------------------

export const hasDig = (() => {
  try {
    execFileSync('dig', ['-v'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

export interface DigRR {
  name: string;
  ttl: number;
  type: string;
  data: string;
}

export interface DigResult {
  status: string;
  flags: string[];
  answer: DigRR[];
  authority: DigRR[];
  additional: DigRR[];
  /** EDNS UDP size in the response's OPT, or null when it carried none. */
  ednsUdp: number | null;
  raw: string;
}

/** Runs `dig @127.0.0.1 -p port +norec <args>` and parses its output (one response). */
export function dig(port: number, args: string[]): Promise<DigResult> {
  return new Promise((resolve, reject) => {
    execFile('dig', ['@127.0.0.1', '-p', String(port), '+norec', '+nocookie', '+time=2', '+tries=1', ...args], (err, stdout) => {
      if (err && !stdout) return reject(new Error(err.message, { cause: err }));
      resolve(parseDig(stdout));
    });
  });
}

export function parseDig(raw: string): DigResult {
  const out: DigResult = { status: '', flags: [], answer: [], authority: [], additional: [], ednsUdp: null, raw };
  let section: DigRR[] | null = null;
  for (const line of raw.split('\n')) {
    const status = /status: (\w+)/.exec(line);
    if (status?.[1] && !out.status) out.status = status[1];
    const flags = /^;; flags: ([^;]*);/.exec(line);
    if (flags?.[1] !== undefined && out.flags.length === 0) out.flags = flags[1].trim().split(/\s+/).filter(Boolean);
    const udp = /; EDNS: .*udp: (\d+)/.exec(line);
    if (udp?.[1]) out.ednsUdp = Number(udp[1]);
    if (line.startsWith(';; ANSWER SECTION')) section = out.answer;
    else if (line.startsWith(';; AUTHORITY SECTION')) section = out.authority;
    else if (line.startsWith(';; ADDITIONAL SECTION')) section = out.additional;
    else if (line.trim() === '' || line.startsWith(';')) {
      if (line.trim() === '') section = null;
    } else if (section) {
      const m = /^(\S+)\s+(\d+)\s+IN\s+(\S+)\s+(.*)$/.exec(line);
      if (m) section.push({ name: m[1] as string, ttl: Number(m[2]), type: m[3] as string, data: (m[4] as string).trim() });
    }
  }
  return out;
}

// ---- raw sockets ------------------------------------------------------------

/** Sends `msg` over UDP (from the loopback address `from` when given) and resolves with the first reply, or null after `ms`. */
export function udpExchange(port: number, msg: Buffer, ms = 1000, from?: string): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const timer = setTimeout(() => done(null), ms);
    const done = (v: Buffer | null) => {
      clearTimeout(timer);
      s.close();
      resolve(v);
    };
    s.on('message', (m) => done(m));
    s.on('error', () => done(null));
    if (from) s.bind(0, from, () => s.send(msg, port, '127.0.0.1'));
    else s.send(msg, port, '127.0.0.1');
  });
}

/**
 * Sends `msg` over UDP, then a valid query `sentinel` from the same socket (sent again every
 * 200 ms until answered); resolves with the replies that came before the sentinel's answer. The
 * server reads a socket's datagrams in order, so its answer to the sentinel shows `msg` was
 * handled: an empty list is "no reply" without waiting a fixed time. The sentinel must carry an
 * id of its own (not `msg`'s).
 */
export function udpBeforeSentinel(port: number, msg: Buffer, sentinel: Buffer, limitMs = 10_000): Promise<Buffer[]> {
  const id = sentinel.readUInt16BE(0);
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    const before: Buffer[] = [];
    const again = setInterval(() => s.send(sentinel, port, '127.0.0.1'), 200);
    const limit = setTimeout(() => end(new Error(`no answer to the sentinel query within ${limitMs} ms`)), limitMs);
    const end = (err?: Error) => {
      clearInterval(again);
      clearTimeout(limit);
      s.close();
      if (err) reject(err);
      else resolve(before);
    };
    s.on('message', (m) => (m.length >= 2 && m.readUInt16BE(0) === id ? end() : before.push(m)));
    s.on('error', (e) => end(e));
    s.send(msg, port, '127.0.0.1', () => s.send(sentinel, port, '127.0.0.1'));
  });
}

/** Writes `payload` on one TCP connection and collects framed replies until `expect` of them (or `expect(replies)` is true), the peer closes, or `ms` pass. */
export function tcpExchange(port: number, payload: Buffer, expect: number | ((replies: Buffer[]) => boolean), ms = 2000, from?: string): Promise<Buffer[]> {
  const enough = typeof expect === 'number' ? (r: Buffer[]) => r.length >= expect : expect;
  return new Promise((resolve) => {
    const replies: Buffer[] = [];
    let buf = Buffer.alloc(0);
    const s = net.connect({ host: '127.0.0.1', port, ...(from ? { localAddress: from } : {}) });
    const timer = setTimeout(() => done(), ms);
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      resolve(replies);
    };
    s.on('error', () => done());
    s.on('close', () => done());
    s.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        replies.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
      if (enough(replies)) done();
    });
    s.write(payload);
  });
}

/**
 * Writes `payload` on one TCP connection and waits for the server to close it (a FIN or a reset):
 * `closed` false means `limitMs` passed first. The replies framed before the close come with it.
 * For "closed without an answer", so that a server that merely stays silent fails the check.
 */
export function tcpUntilClosed(port: number, payload: Buffer, limitMs: number, from?: string): Promise<{ replies: Buffer[]; closed: boolean }> {
  return new Promise((resolve) => {
    const replies: Buffer[] = [];
    let buf = Buffer.alloc(0);
    const s = net.connect({ host: '127.0.0.1', port, ...(from ? { localAddress: from } : {}) });
    const timer = setTimeout(() => done(false), limitMs);
    const done = (closed: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve({ replies, closed });
    };
    s.on('error', () => done(true));
    s.on('close', () => done(true));
    s.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        replies.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
    });
    s.write(payload);
  });
}

/** 2-byte length prefix + message. */
export function frame(msg: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(msg.length);
  return Buffer.concat([len, msg]);
}

// ---- decoding -----------------------------------------------------------------

export interface Rec {
  name: string;
  type: string;
  ttl: number;
  data: unknown;
}

/** A reply as a test reads it (dns-packet's decode, with the fields its typings omit). */
export interface Reply {
  id: number;
  rcode: string;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  questions: { name: string; type: string }[];
  answers: Rec[];
  authorities: Rec[];
  additionals: Rec[];
}

export function decode(msg: Buffer | null | undefined): Reply {
  if (!msg) throw new Error('no reply');
  const p = dnsPacket.decode(msg) as ReturnType<typeof dnsPacket.decode> & { rcode: string };
  const recs = (list: unknown[] | undefined) => (list ?? []) as Rec[];
  return {
    id: p.id ?? 0,
    rcode: p.rcode,
    aa: p.flag_aa,
    tc: p.flag_tc,
    rd: p.flag_rd,
    ra: p.flag_ra,
    questions: (p.questions ?? []).map((q) => ({ name: q.name, type: q.type })),
    answers: recs(p.answers),
    authorities: recs(p.authorities),
    additionals: recs(p.additionals).filter((r) => r.type !== 'OPT'),
  };
}

/** A query built with dns-packet; `edns` adds an OPT with that UDP size. */
export function query(name: string, type: string, opts: { id?: number; edns?: number; flags?: number } = {}): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id: opts.id ?? 4242,
    flags: opts.flags ?? 0,
    questions: [{ name, type: type as dnsPacket.RecordType, class: 'IN' }],
    additionals: opts.edns ? [{ type: 'OPT', name: '.', udpPayloadSize: opts.edns, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] : [],
  });
}

// ---- time ---------------------------------------------------------------------

/** A clock that moves only when told; `armed()` resolves at the next setTimeout, so a test can wait for the server to have read something. */
export class FakeClock {
  private t = 0;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();
  private waiters: (() => void)[] = [];

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + ms, fn });
    for (const w of this.waiters.splice(0)) w();
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** Resolves when a timer is next set. */
  armed(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Moves time forward by `ms`, running each timer that falls due on the way, in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.timers) if (entry[1].at <= end && (!next || entry[1].at < next[1].at)) next = entry;
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
  }
}
