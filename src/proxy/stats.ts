// Per-host traffic statistics from Caddy's access log (src/proxy/README.md, "Per-host stats").
// Pure core: parse one JSON access-log line, count it into fixed time slots per host; the clock
// is injected. Memory is bounded: a fixed number of slots per host, a fixed-size latency
// histogram per slot (allocated on its first request), and at most `maxHosts` hosts (the least
// recently seen one is dropped first). Nothing of the client is kept: only host, status, size
// and duration are read from a line.

/** Slots of the minute window: 12 × 5 s, so "the last minute" is the last 55–60 s. */
export const MINUTE_SLOT_MS = 5_000;
export const MINUTE_SLOTS = 12;
/** Slots of the hour window: 60 × 1 min (the last 59–60 min). */
export const HOUR_SLOT_MS = 60_000;
export const HOUR_SLOTS = 60;
/** Hosts tracked at once; ~32 KiB each at most (72 slots × a 110-bin histogram), so ≤ ~16 MiB. */
export const DEFAULT_MAX_HOSTS = 500;
/** Latency histogram: bin i holds (BASE·G^(i-1), BASE·G^i] ms; 110 bins reach ~48 s, the last one holds everything above. */
const HIST_BASE_MS = 0.01;
const HIST_GROWTH = 1.15;
const HIST_BINS = 110;
const LOG_GROWTH = Math.log(HIST_GROWTH);
/** A host name as Caddy logs it (the request's Host, lower-cased here); anything else is not counted per host. */
const HOST_RE = /^[a-z0-9_*-][a-z0-9_.*-]{0,252}$/;

/** Where requests for hosts no route serves are counted (the catch-all 404s): any Host header a client makes up would otherwise take a slot. */
export const UNROUTED = '(unrouted)';

export const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;
export type StatusClass = (typeof STATUS_CLASSES)[number];

/** The fields of one access-log entry we keep. */
export interface AccessEntry {
  host: string;
  status: number;
  /** Response body bytes (Caddy's `size`). */
  size: number;
  durationMs: number;
}

/**
 * One line of Caddy 2.6.2's JSON access log (`http.log.access…` logger, "handled request") →
 * the entry, or null for anything else. Caddy writes `request.host` as the client sent it
 * (possibly with a port), `status` (0 when no handler wrote: Go then sends 200), `size` (body
 * bytes) and `duration` in seconds (a float).
 */
export function parseAccessLine(line: string): AccessEntry | null {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const o = v as { request?: { host?: unknown }; status?: unknown; size?: unknown; duration?: unknown };
  const rawHost = o.request?.host;
  if (typeof rawHost !== 'string' || typeof o.status !== 'number' || typeof o.duration !== 'number') return null;
  const host = normaliseHost(rawHost);
  if (host === null) return null;
  const status = o.status === 0 ? 200 : o.status;
  const size = typeof o.size === 'number' && o.size >= 0 ? o.size : 0;
  return { host, status, size, durationMs: Math.max(0, o.duration * 1000) };
}

/** `Example.COM:8443.` → `example.com`; null when it is not a host name (an IP literal in brackets, junk). */
export function normaliseHost(raw: string): string | null {
  let h = raw.toLowerCase();
  const colon = h.lastIndexOf(':');
  if (colon !== -1 && /^\d+$/.test(h.slice(colon + 1))) h = h.slice(0, colon);
  if (h.endsWith('.')) h = h.slice(0, -1);
  return HOST_RE.test(h) ? h : null;
}

function binOf(ms: number): number {
  if (ms <= HIST_BASE_MS) return 0;
  return Math.min(HIST_BINS - 1, Math.ceil(Math.log(ms / HIST_BASE_MS) / LOG_GROWTH));
}
/** The upper edge of a bin (ms): a percentile is reported as the edge of the bin it falls in (≤ 15 % high). */
function binEdge(i: number): number {
  return HIST_BASE_MS * HIST_GROWTH ** i;
}

class Slot {
  /** Which slot period this holds (time / slot length); a slot from an older period is reset on use. */
  period = -1;
  requests = 0;
  bytes = 0;
  readonly classes = [0, 0, 0, 0, 0];
  other = 0;
  maxMs = 0;
  hist: Uint32Array | null = null;
  reset(period: number): void {
    this.period = period;
    this.requests = this.bytes = this.other = this.maxMs = 0;
    this.classes.fill(0);
    this.hist?.fill(0);
  }
  add(e: AccessEntry): void {
    this.requests++;
    this.bytes += e.size;
    const c = Math.floor(e.status / 100) - 1;
    if (c >= 0 && c < 5) this.classes[c]!++;
    else this.other++;
    this.hist ??= new Uint32Array(HIST_BINS);
    this.hist[binOf(e.durationMs)]!++;
    if (e.durationMs > this.maxMs) this.maxMs = e.durationMs;
  }
}

class Ring {
  private readonly slots: Slot[];
  constructor(
    private readonly slotMs: number,
    count: number,
  ) {
    this.slots = Array.from({ length: count }, () => new Slot());
  }
  add(now: number, e: AccessEntry): void {
    const period = Math.floor(now / this.slotMs);
    const slot = this.slots[period % this.slots.length]!;
    if (slot.period !== period) slot.reset(period);
    slot.add(e);
  }
  summary(now: number): WindowStats {
    const current = Math.floor(now / this.slotMs);
    const live = this.slots.filter((s) => s.period > current - this.slots.length && s.period <= current);
    const classes = [0, 0, 0, 0, 0];
    const hist = new Uint32Array(HIST_BINS);
    let requests = 0;
    let bytes = 0;
    let maxMs = 0;
    for (const s of live) {
      requests += s.requests;
      bytes += s.bytes;
      s.classes.forEach((n, i) => (classes[i]! += n));
      if (s.hist) for (let i = 0; i < HIST_BINS; i++) hist[i]! += s.hist[i]!;
      maxMs = Math.max(maxMs, s.maxMs);
    }
    const pct = (q: number): number | null => {
      if (requests === 0) return null;
      const rank = Math.ceil(q * requests);
      let seen = 0;
      for (let i = 0; i < HIST_BINS; i++) {
        seen += hist[i]!;
        if (seen >= rank) return round(Math.min(binEdge(i), maxMs));
      }
      return round(maxMs);
    };
    return {
      requests,
      status: Object.fromEntries(STATUS_CLASSES.map((k, i) => [k, classes[i]!])) as Record<StatusClass, number>,
      bytes,
      latency_ms: { p50: pct(0.5), p95: pct(0.95), p99: pct(0.99) },
    };
  }
}

const round = (ms: number): number => Math.round(ms * 1000) / 1000;

export interface WindowStats {
  requests: number;
  /** Responses per status class. */
  status: Record<StatusClass, number>;
  /** Response body bytes. */
  bytes: number;
  /** Percentiles of Caddy's request duration (ms, upper edge of a ~15 % wide bin, never above the slowest request); null without requests. */
  latency_ms: { p50: number | null; p95: number | null; p99: number | null };
}

export interface HostStatsView {
  host: string;
  /** The last minute (55–60 s) and hour (59–60 min). */
  minute: WindowStats;
  hour: WindowStats;
  /** When the last request for the host was logged (ISO), or null. */
  last_seen: string | null;
}

class HostWindows {
  readonly minute = new Ring(MINUTE_SLOT_MS, MINUTE_SLOTS);
  readonly hour = new Ring(HOUR_SLOT_MS, HOUR_SLOTS);
  lastSeen = 0;
}

export interface StatsCounts {
  /** Lines counted for a host. */
  lines: number;
  /** Lines that were not an access-log entry (or named no usable host). */
  ignored: number;
  /** Hosts dropped to stay within maxHosts (their counts are gone). */
  evicted: number;
}

export class HostStats {
  private readonly hosts = new Map<string, HostWindows>();
  private readonly now: () => number;
  private readonly maxHosts: number;
  private readonly accept: (host: string) => boolean;
  readonly counts: StatsCounts = { lines: 0, ignored: 0, evicted: 0 };

  /** `accept`: whether a host is served (default: all); others are counted together under UNROUTED. */
  constructor(opts: { now?: () => number; maxHosts?: number; accept?: (host: string) => boolean } = {}) {
    this.now = opts.now ?? Date.now;
    this.maxHosts = opts.maxHosts ?? DEFAULT_MAX_HOSTS;
    this.accept = opts.accept ?? (() => true);
  }

  /** One access-log line; returns whether it was counted. */
  ingest(line: string): boolean {
    const e = parseAccessLine(line);
    if (!e) {
      this.counts.ignored++;
      return false;
    }
    this.record(e);
    return true;
  }

  record(e: AccessEntry): void {
    const now = this.now();
    const key = this.accept(e.host) ? e.host : UNROUTED;
    let w = this.hosts.get(key);
    if (w) this.hosts.delete(key); // re-inserted last: the Map's order is least recently seen first
    else {
      w = new HostWindows();
      if (this.hosts.size >= this.maxHosts) {
        const oldest = this.hosts.keys().next().value as string;
        this.hosts.delete(oldest);
        this.counts.evicted++;
      }
    }
    this.hosts.set(key, w);
    w.minute.add(now, e);
    w.hour.add(now, e);
    w.lastSeen = now;
    this.counts.lines++;
  }

  /** One host's windows (zeros for a host with no request in the last hour or never seen). */
  host(name: string): HostStatsView {
    const host = name === UNROUTED ? name : (normaliseHost(name) ?? name);
    const now = this.now();
    const w = this.hosts.get(host) ?? new HostWindows();
    return { host, minute: w.minute.summary(now), hour: w.hour.summary(now), last_seen: w.lastSeen ? new Date(w.lastSeen).toISOString() : null };
  }

  /** Every host with a request in the last hour, sorted by name. */
  all(): HostStatsView[] {
    const now = this.now();
    return [...this.hosts.entries()]
      .filter(([, w]) => w.lastSeen > now - HOUR_SLOT_MS * HOUR_SLOTS)
      .map(([h]) => h)
      .sort()
      .map((h) => this.host(h));
  }

  get size(): number {
    return this.hosts.size;
  }
}
