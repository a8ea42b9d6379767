// The DNS server shell: UDP and TCP sockets on one port, response cache, forwarding, metrics.
// All protocol decisions live in handler.ts; this file moves bytes and never lets an error
// escape a socket callback (a bad packet gets SERVFAIL or nothing, never a crash).
import dgram from 'node:dgram';
import dns from 'node:dns';
import net, { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { logger, type Logger } from '../log/index.js';
import { cidrList, inCidrList } from '../model/cidr.js';
import { dnsLatency, dnsQueryTally, type QueryTally } from '../metrics.js';
import { ResponseCache } from './cache.js';
import type { ViewTable } from './views.js';
import { Forwarder, forwardedReply } from './forward.js';
import { handle, type HandlerConfig, type Outcome, type Transport } from './handler.js';
import { FLAG, HEADER_BYTES, RCODE, bareResponse, rcodeName } from './wire.js';
import type { ZoneIndex } from './zone.js';
import type { PlainUpstreams } from './upstreams.js';

/** Kernel receive buffer for the UDP socket; bursts of thousands of queries drop with the default ~200 KiB. */
const UDP_RECV_BUFFER = 4 * 1024 * 1024;
/** RFC 7766 §6.2.3: close idle TCP connections; seconds, not minutes, so idle clients cannot pin slots. Only whole messages (and our replies) count as activity. */
export const TCP_IDLE_MS = 10_000;
/** A whole length-prefixed message must arrive within this of its first byte: a query is one round trip, so a trickle cannot hold a slot. */
export const TCP_MESSAGE_MS = 5_000;
/** Open TCP connections at once; more are closed on accept. */
const MAX_TCP_CONNECTIONS = 256;
/** Open TCP connections from one address; more are closed on accept, so one client cannot take every slot (stubs use one or two). */
export const MAX_TCP_PER_ADDRESS = 32;
/** Forwarded queries in flight per TCP connection before we stop reading from it. */
const MAX_TCP_INFLIGHT = 64;
/** Cached authoritative responses per transport (about 250 bytes each with key and map slot). */
const RESPONSE_CACHE_ENTRIES = 50_000;
/** Who may use forwarding when the caller names nobody: this host only. */
const LOOPBACK = ['127.0.0.0/8', '::1/128'] as const;
/** Attempts to find a port free for both UDP and TCP when asked for port 0. */
const PORT_ATTEMPTS = 5;
/** How often the cached "is debug logging on" flag is refreshed. */
const DEBUG_FLAG_REFRESH_MS = 1000;

export interface DnsServerOptions {
  host: string;
  /** 0 picks a free port (the same number for UDP and TCP). */
  port: number;
  index: ZoneIndex;
  /** Resolvers for names outside our zones (`ip`, `ip:port`, `[ipv6]:port`); empty → REFUSED. */
  upstreams: readonly string[];
  /** Addresses allowed to AXFR/IXFR over TCP (exact IPs; IPv4-mapped IPv6 peers match their IPv4 form). */
  axfrAllow: readonly string[];
  /**
   * Client networks (IPs or CIDRs, see parseCidr) whose queries for names outside our zones are
   * forwarded; others get REFUSED for those (answers from our zones stay open to all). Default: loopback.
   */
  recursionAllow?: readonly string[];
  log?: Logger;
  /** Clock of the TCP deadlines (tests pass a fake one). */
  clock?: Clock;
  /** Plain proxied names' backends, answered to `allow` (IPs or CIDRs: this node's own addresses) only. */
  plain?: { table: PlainUpstreams; allow: readonly string[] };
  /** Split horizon: which view a client's source address is in (its A/AAAA answers follow it). Absent: one answer for all. */
  views?: ViewTable;
}

/** Response-cache generations per view-table generation: the two counters combined stay exact below 2^53. */
const VIEW_GENERATION_STEP = 2 ** 32;

/** Time and timers; the TCP deadlines read nothing else. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** A cached reply as a one-byte string: about half the memory of a Buffer (view + pooled bytes) per entry. */
interface Cached {
  message: string;
  counter: QueryTally;
}

type Sink = (message: Buffer) => void;

/** Canonical text of an IP for comparisons: IPv4-mapped IPv6 → IPv4, IPv6 compressed lower-case. */
function canonicalIp(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped?.[1]) return mapped[1];
  if (isIP(ip) === 6) return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  return ip;
}

export class DnsServer {
  private readonly opts: DnsServerOptions;
  private readonly log: Logger;
  private readonly forwarder: Forwarder | null;
  private readonly cfg: HandlerConfig;
  private readonly udpCache = new ResponseCache<Cached>(RESPONSE_CACHE_ENTRIES);
  private readonly tcpCache = new ResponseCache<Cached>(RESPONSE_CACHE_ENTRIES);
  private readonly counters = new Map<string, QueryTally>();
  private readonly latency = { udp: dnsLatency.seriesFor('udp'), tcp: dnsLatency.seriesFor('tcp') };
  private readonly conns = new Set<net.Socket>();
  /** Open TCP connections per client address (canonical form). */
  private readonly perAddress = new Map<string, number>();
  private readonly clock: Clock;
  private udp: dgram.Socket | null = null;
  private tcp: net.Server | null = null;
  private port = 0;
  private running = false;
  private debug = false;
  private debugTimer: NodeJS.Timeout | null = null;

  /** Throws when an upstream, axfrAllow or recursionAllow entry is malformed. Binds nothing until start(). */
  constructor(opts: DnsServerOptions) {
    this.opts = opts;
    this.log = opts.log ?? logger('dns');
    this.clock = opts.clock ?? systemClock;
    this.forwarder = opts.upstreams.length ? new Forwarder({ upstreams: opts.upstreams }) : null;
    const allowed = new Set(
      opts.axfrAllow.map((ip) => {
        if (isIP(ip) === 0) throw new Error(`axfrAllow entry "${ip}" is not an IP address`);
        return canonicalIp(ip);
      }),
    );
    const recursion = cidrList(opts.recursionAllow ?? LOOPBACK);
    this.cfg = {
      index: opts.index,
      forwarding: this.forwarder !== null,
      transferAllowed: (address) => allowed.has(canonicalIp(address)),
      recursionAllowed: (address) => inCidrList(recursion, address),
    };
    if (opts.plain) {
      const own = cidrList(opts.plain.allow);
      this.cfg.plain = { table: opts.plain.table, allowed: (address) => inCidrList(own, address) };
    }
  }

  /** Binds UDP, then TCP on the same port. Rejects (and leaves nothing bound) when either fails. */
  async start(): Promise<void> {
    if (this.running || this.udp) throw new Error('DNS server already started');
    const { host } = this.opts;
    for (let attempt = 1; ; attempt++) {
      const udp = await this.bindUdp(host, this.opts.port);
      const port = udp.address().port;
      try {
        this.tcp = await this.listenTcp(host, port);
        this.udp = udp;
        this.port = port;
        break;
      } catch (err) {
        await closeUdp(udp);
        const taken = (err as NodeJS.ErrnoException).code === 'EADDRINUSE';
        if (this.opts.port !== 0 || !taken || attempt >= PORT_ATTEMPTS) throw err;
      }
    }
    this.running = true;
    this.refreshDebug();
    this.debugTimer = setInterval(() => this.refreshDebug(), DEBUG_FLAG_REFRESH_MS).unref();
    this.log.info('dns listening', { host, port: this.port, forwarding: this.cfg.forwarding, ...(this.cfg.forwarding ? { recursion_allow: this.opts.recursionAllow ?? LOOPBACK } : {}) });
  }

  /** Closes both sockets and every TCP connection, and ends forwarded queries. Safe to call at any point, more than once. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.debugTimer) clearInterval(this.debugTimer);
    this.debugTimer = null;
    this.forwarder?.close();
    for (const s of this.conns) s.destroy();
    this.conns.clear();
    const udp = this.udp;
    const tcp = this.tcp;
    this.udp = this.tcp = null;
    await Promise.all([udp ? closeUdp(udp) : undefined, tcp ? new Promise<void>((resolve) => tcp.close(() => resolve())) : undefined]);
  }

  /** Where the server listens; the port is the bound one (useful with port 0). Throws before start(). */
  address(): { host: string; port: number } {
    if (!this.udp) throw new Error('DNS server not started');
    return { host: this.opts.host, port: this.port };
  }

  status(): 'ok' | 'down' {
    return this.running && this.udp && this.tcp?.listening ? 'ok' : 'down';
  }

  /** TCP connections open now (ones being closed not counted). */
  tcpConnections(): number {
    let n = 0;
    for (const s of this.conns) if (!s.destroyed) n++;
    return n;
  }

  private refreshDebug(): void {
    this.debug = this.log.isDebugEnabled();
  }

  private bindUdp(host: string, port: number): Promise<dgram.Socket> {
    const socket = dgram.createSocket({ type: isIP(host) === 6 ? 'udp6' : 'udp4', recvBufferSize: UDP_RECV_BUFFER, lookup: literalLookup });
    return new Promise((resolve, reject) => {
      socket.once('error', (err) => {
        void closeUdp(socket).finally(() => reject(err));
      });
      socket.bind(port, host, () => {
        socket.removeAllListeners('error');
        socket.on('error', (err) => this.log.debug('udp socket error', { error: err.message }));
        socket.on('message', (msg, rinfo) => this.onUdp(socket, msg, rinfo));
        resolve(socket);
      });
    });
  }

  private listenTcp(host: string, port: number): Promise<net.Server> {
    const server = net.createServer((socket) => this.onConnection(socket));
    server.maxConnections = MAX_TCP_CONNECTIONS;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port, exclusive: true }, () => {
        server.off('error', reject);
        server.on('error', (err) => this.log.warn('tcp server error', { error: err.message }));
        resolve(server);
      });
    });
  }

  // ---- UDP ----------------------------------------------------------------

  private onUdp(socket: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const t0 = performance.now();
    try {
      // Too short to be a query, or a response (QR=1): answering those invites loops.
      if (msg.length < HEADER_BYTES || ((msg[2] as number) & 0x80) !== 0) return;
      const send: Sink = (out) => socket.send(out, rinfo.port, rinfo.address);
      const view = this.viewOf(rinfo.address);
      const key = this.cacheKey(msg, view);
      const hit = this.udpCache.get(key, this.generation());
      if (hit) return this.sendCached(hit, msg, send, 'udp', t0, rinfo.address);
      this.dispatch(msg, 'udp', rinfo.address, t0, send, key, undefined, view);
    } catch (err) {
      this.failed(msg, err, (out) => socket.send(out, rinfo.port, rinfo.address));
    }
  }

  /** The client's view, or null (in none, or no views defined). */
  private viewOf(address: string): string | null {
    const views = this.opts.views;
    return views && views.size ? views.viewOf(address) : null;
  }

  /**
   * Cache key: the query bytes after the ID; while views are defined, prefixed with the client's
   * view name (empty for none) and a NUL, which no view name holds, so no two views share an entry.
   */
  private cacheKey(msg: Buffer, view: string | null): string {
    const bytes = msg.toString('latin1', 2);
    return this.opts.views?.size ? `${view ?? ''}\u0000${bytes}` : bytes;
  }

  /** The cache generation: the index's and the view table's (a key format change empties the cache too). */
  private generation(): number {
    return this.opts.index.generation + (this.opts.views?.generation ?? 0) * VIEW_GENERATION_STEP;
  }

  private sendCached(hit: Cached, msg: Buffer, send: Sink, transport: Transport, t0: number, remote: string): void {
    const out = Buffer.from(hit.message, 'latin1');
    out[0] = msg[0] as number;
    out[1] = msg[1] as number;
    send(out);
    hit.counter.n++;
    this.latency[transport].observe((performance.now() - t0) / 1000);
    if (this.debug) this.log.debug('query', { transport, remote, cached: true, bytes: out.length });
  }

  // ---- shared -------------------------------------------------------------

  /** Handles one query (cache miss); replies through `send`. Returns true when it went to the forwarder (`done` runs when that settles). */
  private dispatch(msg: Buffer, transport: Transport, remote: string, t0: number, send: Sink, key: string, done?: () => void, view: string | null = null): boolean {
    const generation = this.generation();
    const outcome: Outcome = handle(msg, transport, remote, this.cfg, view);
    switch (outcome.kind) {
      case 'drop':
        return false;
      case 'reply': {
        const counter = this.counter(outcome.qtype, outcome.rcode, transport);
        if (outcome.cacheable) (transport === 'udp' ? this.udpCache : this.tcpCache).set(key, { message: outcome.message.toString('latin1'), counter }, generation);
        send(outcome.message);
        this.account(counter, transport, t0, remote, outcome.qtype, outcome.rcode);
        return false;
      }
      case 'transfer':
        for (const m of outcome.messages) send(m);
        this.account(this.counter(outcome.qtype, RCODE.NOERROR, transport), transport, t0, remote, outcome.qtype, RCODE.NOERROR);
        this.log.info('zone transfer', { remote, messages: outcome.messages.length });
        return false;
      case 'forward': {
        const q = outcome.query;
        const forwarder = this.forwarder;
        if (!forwarder) return false;
        forwarder
          .resolve({ question: q.question, edns: q.edns !== null, dnssecOk: q.edns?.dnssecOk ?? false, cd: q.cd })
          .then((upstream) => {
            const { message, rcode } = forwardedReply(upstream, q, outcome.limit, outcome.opt);
            if (this.running) send(message);
            this.account(this.counter(outcome.qtype, rcode, transport), transport, t0, remote, outcome.qtype, rcode);
          })
          .catch((err: unknown) => this.failed(msg, err, send))
          .finally(() => done?.());
        return true;
      }
    }
  }

  private account(counter: QueryTally, transport: Transport, t0: number, remote: string, qtype: string, rcode: number): void {
    counter.n++;
    this.latency[transport].observe((performance.now() - t0) / 1000);
    if (this.debug) this.log.debug('query', { transport, remote, qtype, rcode: rcodeName(rcode) });
  }

  /** One tally per (qtype, rcode, transport), created on first use; unknown types share 'other'. */
  private counter(qtype: string, rcode: number, transport: Transport): QueryTally {
    const label = qtype.startsWith('TYPE') ? 'other' : qtype;
    const key = `${label}|${rcode}|${transport}`;
    let c = this.counters.get(key);
    if (!c) this.counters.set(key, (c = dnsQueryTally(label, rcodeName(rcode), transport)));
    return c;
  }

  /** A handler bug: answer SERVFAIL with the query's ID (header only) and log it. */
  private failed(msg: Buffer, err: unknown, send: Sink): void {
    this.log.warn('dns handler error', { error: err instanceof Error ? err.message : String(err) });
    try {
      if (msg.length < HEADER_BYTES || ((msg[2] as number) & 0x80) !== 0) return;
      const flags = msg.readUInt16BE(2);
      send(bareResponse(msg.readUInt16BE(0), (flags & 0x7800) | (flags & FLAG.RD), RCODE.SERVFAIL, null, null));
    } catch {
      // nothing more we can do for this packet
    }
  }

  // ---- TCP ----------------------------------------------------------------

  private onConnection(socket: net.Socket): void {
    if (!this.running) {
      socket.destroy();
      return;
    }
    const remote = socket.remoteAddress ?? '';
    const address = canonicalIp(remote);
    const open = this.perAddress.get(address) ?? 0;
    if (open >= MAX_TCP_PER_ADDRESS) {
      if (this.debug) this.log.debug('tcp connection refused: too many from this address', { remote, open });
      socket.destroy();
      return;
    }
    this.perAddress.set(address, open + 1);
    this.conns.add(socket);
    socket.on('error', () => socket.destroy());
    socket.setNoDelay(true);
    const clock = this.clock;
    const deadline = new TcpDeadline(clock.now());
    let timer: unknown = null;
    let armedFor = Infinity;
    // One timer per connection; a deadline that moved later is looked at again when the timer fires.
    const arm = () => {
      if (timer !== null) clock.clearTimeout(timer);
      armedFor = deadline.at();
      timer = clock.setTimeout(expire, Math.max(0, armedFor - clock.now()));
    };
    const expire = () => {
      timer = null;
      const now = clock.now();
      // Forwarded queries still in flight: not idle (each settles within the forwarder's timeouts).
      if (inflight > 0) deadline.busy(now);
      if (now >= deadline.at()) socket.destroy();
      else arm();
    };
    socket.on('close', () => {
      if (timer !== null) clock.clearTimeout(timer);
      this.conns.delete(socket);
      const left = (this.perAddress.get(address) ?? 1) - 1;
      if (left > 0) this.perAddress.set(address, left);
      else this.perAddress.delete(address);
    });
    arm();
    let pending: Buffer = Buffer.alloc(0);
    let inflight = 0;
    const send: Sink = (message) => {
      if (socket.destroyed || !socket.writable) return;
      deadline.replied(clock.now());
      const frame = Buffer.allocUnsafe(2 + message.length);
      frame.writeUInt16BE(message.length, 0);
      message.copy(frame, 2);
      socket.write(frame);
    };
    // Pipelined forwarded queries answer out of order (RFC 7766 §6.2.1.1); too many at once → stop reading.
    const settled = () => {
      inflight--;
      if (inflight < MAX_TCP_INFLIGHT && socket.isPaused() && !socket.destroyed) socket.resume();
    };
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      let whole = false;
      // RFC 7766 §8: each message is preceded by its 2-byte length; several may arrive at once.
      while (pending.length >= 2) {
        const len = pending.readUInt16BE(0);
        if (len < HEADER_BYTES) {
          // Cannot be a DNS message; the stream is out of sync, so end the connection.
          socket.destroy();
          return;
        }
        if (pending.length < 2 + len) break;
        const msg = pending.subarray(2, 2 + len);
        pending = pending.subarray(2 + len);
        whole = true;
        if (this.onTcp(msg, remote, send, settled) && ++inflight >= MAX_TCP_INFLIGHT) socket.pause();
      }
      if (socket.destroyed) return;
      deadline.read(clock.now(), whole, pending.length > 0);
      if (deadline.at() < armedFor) arm();
    });
  }

  /** Returns true when the query went to the forwarder (then `done` is called when it settles). */
  private onTcp(msg: Buffer, remote: string, send: Sink, done: () => void): boolean {
    const t0 = performance.now();
    try {
      if (((msg[2] as number) & 0x80) !== 0) return false;
      const view = this.viewOf(remote);
      const key = this.cacheKey(msg, view);
      const hit = this.tcpCache.get(key, this.generation());
      if (hit) {
        this.sendCached(hit, msg, send, 'tcp', t0, remote);
        return false;
      }
      return this.dispatch(msg, 'tcp', remote, t0, send, key, done, view);
    } catch (err) {
      this.failed(msg, err, send);
      return false;
    }
  }
}

/**
 * When one TCP connection must end (pure; the server arms a timer for `at()`): TCP_MESSAGE_MS
 * after the first byte of a message still incomplete, else TCP_IDLE_MS after the last whole
 * message received, reply sent or moment a forwarded query was still in flight. Bytes that do
 * not complete a message move neither, so a trickle cannot keep a connection open.
 */
export class TcpDeadline {
  private idleFrom: number;
  private messageFrom: number | null = null;

  constructor(now: number) {
    this.idleFrom = now;
  }

  /** After a chunk was read: `whole` when it completed a message, `partial` when bytes of an unfinished one remain. */
  read(now: number, whole: boolean, partial: boolean): void {
    if (whole) this.idleFrom = now;
    // The unfinished message began in this chunk unless one was already under way and none completed.
    if (!partial) this.messageFrom = null;
    else if (whole || this.messageFrom === null) this.messageFrom = now;
  }

  replied(now: number): void {
    this.idleFrom = now;
  }

  /** Work is pending on our side (forwarded queries): the client is not idle. */
  busy(now: number): void {
    this.idleFrom = now;
  }

  at(): number {
    return this.messageFrom === null ? this.idleFrom + TCP_IDLE_MS : this.messageFrom + TCP_MESSAGE_MS;
  }
}

/**
 * dgram resolves the destination of every send() through `lookup`. Replies only ever go to the
 * literal address a query came from, so answer those at once instead of going through
 * dns.lookup's validation and a process.nextTick per packet; anything else takes dns.lookup.
 */
function literalLookup(address: string, options: dns.LookupOneOptions, callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void): void {
  const family = isIP(address);
  if (family === 0) dns.lookup(address, options, callback);
  else callback(null, address, family);
}

function closeUdp(socket: dgram.Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve();
    }
  });
}
