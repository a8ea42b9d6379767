// Forwarder for names outside our zones: asks upstream resolvers over UDP (TCP when the answer
// is truncated), caches by TTL, and hands back the upstream's bytes with only the ID, TTLs,
// question case and flags rewritten — every record type and its RDATA pass through untouched.
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import net, { isIP } from 'node:net';
import { EDNS_UDP_SIZE, FLAG, HEADER_BYTES, RCODE, TYPE, bareResponse, walkRrs, type OptOut, type Query, type RrSpan } from './wire.js';

/** Per-upstream wait before trying the next one; below a typical stub's 5 s timeout with room for two upstreams. */
export const UPSTREAM_TIMEOUT_MS = 1500;
/** Cache bound (entries); the oldest entry goes first when full. */
export const FORWARD_CACHE_ENTRIES = 10_000;
/** Longest time we keep any answer, whatever its TTL says (one day). */
const MAX_CACHE_TTL = 86_400;

export interface Upstream {
  host: string;
  port: number;
  family: 4 | 6;
}

/** Parses `ip`, `ip:port`, bare IPv6 or `[ipv6]:port`. Throws on anything else. */
export function parseUpstream(text: string): Upstream {
  if (isIP(text) === 4) return { host: text, port: 53, family: 4 };
  if (isIP(text) === 6) return { host: text, port: 53, family: 6 };
  const m = /^(?:\[([^\]]+)\]|([0-9.]+)):(\d{1,5})$/.exec(text);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  const family = host === undefined ? 0 : isIP(host);
  if (!m || host === undefined || family === 0 || (m[1] !== undefined && family !== 6) || !(port >= 1 && port <= 65535))
    throw new Error(`upstream "${text}" must be ip, ip:port or [ipv6]:port`);
  return { host, port, family: family === 6 ? 6 : 4 };
}

/** What the client asked, as the forwarder needs it. */
export interface ForwardRequest {
  /** Raw question section (name, type, class) as the client sent it. */
  question: Buffer;
  edns: boolean;
  dnssecOk: boolean;
  cd: boolean;
}

interface Entry {
  /** Upstream response (lower-case question, our OPT size); never handed out, only copied. */
  msg: Buffer;
  /** Offsets of every TTL field except OPT's. */
  ttlAt: number[];
  storedAt: number;
  /** ms; 0 when the answer may not be cached. */
  expiresAt: number;
}

/** ASCII-lower-cased copy of a question section (the name's labels; type and class unchanged). */
function lowerQuestion(q: Buffer): Buffer {
  const out = Buffer.from(q);
  for (let i = 0; i < out.length - 4; i++) {
    const b = out[i] as number;
    if (b >= 0x41 && b <= 0x5a) out[i] = b | 0x20;
  }
  return out;
}

/** Reads the upstream answer: well-formed, ours (ID, question), and where its TTLs and OPT sit. */
function inspect(msg: Buffer, id: number, question: Buffer): { rcode: number; tc: boolean; spans: RrSpan[]; counts: number[] } | null {
  if (msg.length < HEADER_BYTES + question.length || msg.readUInt16BE(0) !== id) return null;
  const flags = msg.readUInt16BE(2);
  if (!(flags & FLAG.QR) || msg.readUInt16BE(4) !== 1) return null;
  if (!lowerQuestion(msg.subarray(HEADER_BYTES, HEADER_BYTES + question.length)).equals(question)) return null;
  const counts = [msg.readUInt16BE(6), msg.readUInt16BE(8), msg.readUInt16BE(10)];
  const spans: RrSpan[] = [];
  const end = walkRrs(msg, HEADER_BYTES + question.length, (counts[0] ?? 0) + (counts[1] ?? 0) + (counts[2] ?? 0), spans);
  if (end < 0) return null;
  return { rcode: flags & 0xf, tc: (flags & FLAG.TC) !== 0, spans, counts };
}

/** Seconds an answer may be cached: the answer's lowest TTL, or for a negative answer the SOA's min(TTL, MINIMUM) (RFC 2308 §5). */
function cacheSeconds(msg: Buffer, rcode: number, spans: RrSpan[], answers: number): number {
  if (rcode === RCODE.NOERROR && answers > 0) {
    let min = MAX_CACHE_TTL;
    for (let i = 0; i < answers; i++) min = Math.min(min, msg.readUInt32BE((spans[i] as RrSpan).ttlAt));
    return min;
  }
  const soa = spans.find((s, i) => i >= answers && s.type === TYPE.SOA);
  if (!soa || soa.end - soa.rdata < 22) return 0;
  return Math.min(msg.readUInt32BE(soa.ttlAt), msg.readUInt32BE(soa.end - 4), MAX_CACHE_TTL);
}

export interface ForwarderOptions {
  upstreams: readonly string[];
  timeoutMs?: number;
  maxEntries?: number;
  /** Clock in ms (tests pass a fake). */
  now?: () => number;
  /** Source of query IDs. */
  randomId?: () => number;
}

export class Forwarder {
  private readonly upstreams: Upstream[];
  private readonly timeoutMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  private readonly randomId: () => number;
  private readonly cache = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<Entry | null>>();
  /** Aborts for exchanges in progress, so close() can end them. */
  private readonly aborts = new Set<() => void>();
  private closed = false;

  /** Throws when an upstream is malformed. */
  constructor(opts: ForwarderOptions) {
    this.upstreams = opts.upstreams.map(parseUpstream);
    this.timeoutMs = opts.timeoutMs ?? UPSTREAM_TIMEOUT_MS;
    this.maxEntries = opts.maxEntries ?? FORWARD_CACHE_ENTRIES;
    this.now = opts.now ?? Date.now;
    this.randomId = opts.randomId ?? (() => randomInt(0, 0x10000));
  }

  get cacheSize(): number {
    return this.cache.size;
  }

  /**
   * The upstream answer for `req` with TTLs aged by the time spent in cache, or null when every
   * upstream failed (timeout, network error, malformed reply, or an RCODE other than NOERROR /
   * NXDOMAIN). Identical questions in flight share one upstream exchange. Never rejects.
   */
  async resolve(req: ForwardRequest): Promise<Buffer | null> {
    const question = lowerQuestion(req.question);
    const key = `${question.toString('latin1')}|${req.edns ? 1 : 0}${req.dnssecOk ? 1 : 0}${req.cd ? 1 : 0}`;
    const hit = this.cache.get(key);
    if (hit && hit.expiresAt > this.now()) return this.aged(hit);
    if (hit) this.cache.delete(key);
    let pending = this.inflight.get(key);
    if (!pending) {
      pending = this.fetch(question, req).then((entry) => {
        this.inflight.delete(key);
        if (entry && entry.expiresAt > entry.storedAt && !this.closed) this.store(key, entry);
        return entry;
      });
      this.inflight.set(key, pending);
    }
    const entry = await pending;
    return entry && this.aged(entry);
  }

  /** Ends exchanges in progress (their callers get null) and empties the cache. */
  close(): void {
    this.closed = true;
    for (const abort of [...this.aborts]) abort();
    this.cache.clear();
  }

  private store(key: string, entry: Entry): void {
    if (this.cache.size >= this.maxEntries) {
      const oldest = this.cache.keys().next();
      if (!oldest.done) this.cache.delete(oldest.value);
    }
    this.cache.set(key, entry);
  }

  private aged(entry: Entry): Buffer {
    const out = Buffer.from(entry.msg);
    const elapsed = Math.floor((this.now() - entry.storedAt) / 1000);
    if (elapsed > 0) for (const at of entry.ttlAt) out.writeUInt32BE(Math.max(0, entry.msg.readUInt32BE(at) - elapsed), at);
    return out;
  }

  private query(id: number, question: Buffer, req: ForwardRequest): Buffer {
    const opt: OptOut | null = req.edns ? { udpSize: EDNS_UDP_SIZE, dnssecOk: req.dnssecOk } : null;
    const msg = bareResponse(id, FLAG.RD | (req.cd ? FLAG.CD : 0), 0, question, opt);
    msg.writeUInt16BE(msg.readUInt16BE(2) & ~FLAG.QR, 2);
    return msg;
  }

  private async fetch(question: Buffer, req: ForwardRequest): Promise<Entry | null> {
    for (const up of this.upstreams) {
      if (this.closed) return null;
      let id = this.randomId() & 0xffff;
      let msg = await this.udpExchange(up, this.query(id, question, req), id, question);
      let seen = msg && inspect(msg, id, question);
      if (seen?.tc) {
        id = this.randomId() & 0xffff;
        msg = await this.tcpExchange(up, this.query(id, question, req));
        seen = msg && inspect(msg, id, question);
      }
      if (!msg || !seen || (seen.rcode !== RCODE.NOERROR && seen.rcode !== RCODE.NXDOMAIN)) continue;
      const ttlAt: number[] = [];
      for (const s of seen.spans) {
        if (s.type === TYPE.OPT) msg.writeUInt16BE(EDNS_UDP_SIZE, s.start + 3);
        else ttlAt.push(s.ttlAt);
      }
      const storedAt = this.now();
      const seconds = cacheSeconds(msg, seen.rcode, seen.spans, seen.counts[0] ?? 0);
      return { msg, ttlAt, storedAt, expiresAt: storedAt + seconds * 1000 };
    }
    return null;
  }

  /**
   * Settles once with the first of: `finish(result)` from `wire`, the timeout (null), or close()
   * (null); then clears the timer, unregisters from close() and calls `release` (closes the socket).
   */
  private exchange(release: () => void, wire: (finish: (result: Buffer | null) => void) => void): Promise<Buffer | null> {
    return new Promise((resolve) => {
      let done = false;
      const finish = (result: Buffer | null) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.aborts.delete(abort);
        release();
        resolve(result);
      };
      const abort = () => finish(null);
      const timer = setTimeout(abort, this.timeoutMs);
      this.aborts.add(abort);
      wire(finish);
    });
  }

  /** One UDP exchange on a fresh connected socket (random source port; ICMP errors end it early). */
  private udpExchange(up: Upstream, query: Buffer, id: number, question: Buffer): Promise<Buffer | null> {
    const socket = dgram.createSocket(up.family === 6 ? 'udp6' : 'udp4');
    const release = () => {
      try {
        socket.close();
      } catch {
        // already closed
      }
    };
    return this.exchange(release, (finish) => {
      const abort = () => finish(null);
      socket.on('error', abort);
      socket.on('message', (m) => {
        // Keep waiting on anything that is not the answer to this query (spoofing, stale replies).
        if (inspect(m, id, question)) finish(m);
      });
      socket.connect(up.port, up.host, () => socket.send(query, (err) => err && abort()));
    });
  }

  /** One TCP exchange (RFC 7766 framing); used when the UDP answer came back truncated. */
  private tcpExchange(up: Upstream, query: Buffer): Promise<Buffer | null> {
    const socket = net.connect({ host: up.host, port: up.port });
    return this.exchange(
      () => socket.destroy(),
      (finish) => {
        let buf = Buffer.alloc(0);
        const abort = () => finish(null);
        socket.on('error', abort);
        socket.on('close', abort);
        socket.on('connect', () => {
          const frame = Buffer.alloc(2 + query.length);
          frame.writeUInt16BE(query.length, 0);
          query.copy(frame, 2);
          socket.write(frame);
        });
        socket.on('data', (chunk: Buffer) => {
          buf = Buffer.concat([buf, chunk]);
          if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) finish(Buffer.from(buf.subarray(2, 2 + buf.readUInt16BE(0))));
        });
      },
    );
  }
}

/**
 * The client's reply from an upstream answer: client ID and question bytes (the case it asked),
 * RD as asked, RA set, AA cleared (we are not the authority). Too big for `limit` → TC=1 with
 * the question only. `upstream` null → SERVFAIL.
 */
export function forwardedReply(upstream: Buffer | null, q: Query, limit: number, opt: OptOut | null): { message: Buffer; rcode: number } {
  const flags = (q.opcode << 11) | (q.rd ? FLAG.RD : 0) | FLAG.RA | (q.cd ? FLAG.CD : 0);
  if (!upstream) return { message: bareResponse(q.id, flags, RCODE.SERVFAIL, q.question, opt), rcode: RCODE.SERVFAIL };
  const rcode = upstream.readUInt16BE(2) & 0xf;
  if (upstream.length > limit) return { message: bareResponse(q.id, flags | FLAG.TC, rcode, q.question, opt), rcode };
  upstream.writeUInt16BE(q.id, 0);
  const up = upstream.readUInt16BE(2);
  upstream.writeUInt16BE((up & ~(FLAG.AA | FLAG.RD | FLAG.TC)) | FLAG.QR | FLAG.RA | (q.rd ? FLAG.RD : 0), 2);
  q.question.copy(upstream, HEADER_BYTES);
  return { message: upstream, rcode };
}
