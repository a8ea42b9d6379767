// `least_latency` balancing (issue 15, item 2). Caddy 2.6.2 has no such selection policy, so the
// controller measures each upstream itself (TCP connect + HTTP GET of the route's active health
// path or `/`, time to the first response byte), keeps the median of its last few samples per upstream, and renders
// the route with Caddy's `first` policy over the upstreams in ranked order: Caddy sends to the
// fastest and fails over in that order. The ranking changes Caddy at most once a minute and only
// when the new fastest is clearly faster (hysteresis below). Clock and timers are injected.
import { EventEmitter } from 'node:events';
import http from 'node:http';
import type { Logger } from '../log/index.js';
import type { Timers } from '../timers.js';
import { dialHostPort, type DesiredProxy, type DesiredRoute } from './types.js';

/** Time between probe rounds: 10 s gives 6 samples per upstream within the minute a ranking change has to wait. */
export const PROBE_INTERVAL_MS = 10_000;
/** A probe slower than this counts as failed: a backend that slow is not a candidate for "fastest". */
export const PROBE_TIMEOUT_MS = 2_000;
/** Samples an upstream needs before it is ranked at all: one probe can hit a GC pause or a cold cache. */
export const MIN_SAMPLES = 3;
/** Samples kept per upstream; the ranking uses their median: a real change wins after 3 rounds, one-off spikes (GC, a loaded box) never count. */
export const WINDOW = 5;
/** Shortest time between two ranking changes pushed to Caddy (the issue: at most once a minute). */
export const MIN_CHANGE_INTERVAL_MS = 60_000;
/** A new leader must be faster than the current one by more than this fraction… */
export const HYSTERESIS_RATIO = 0.2;
/** …and by more than this many milliseconds: on loopback 20 % of 1 ms is noise. */
export const HYSTERESIS_MS = 5;

/** One probe: resolves with milliseconds to the first response byte, rejects on any failure. */
export type Probe = (dial: string, path: string) => Promise<number>;

/** Whether a route asks the controller to rank its upstreams. */
export const ranksByLatency = (r: DesiredRoute): boolean => r.balancing?.policy === 'least_latency' && r.upstreams.length > 1;

/** TCP connect + `GET path` to `dial` (`host:port`), timed from before the connect to the response headers. */
export function httpProbe(now: () => number = () => performance.now()): Probe {
  return (dial, path) =>
    new Promise((resolve, reject) => {
      const start = now();
      const req = http.request({ ...dialHostPort(dial), path, method: 'GET', agent: false, timeout: PROBE_TIMEOUT_MS }, (res) => {
        const ms = now() - start;
        // Timed to the headers: a streaming body must not keep the socket open (as in recovery.ts).
        res.destroy();
        resolve(ms);
      });
      req.on('timeout', () => req.destroy(new Error('probe timed out')));
      req.on('error', reject);
      req.end();
    });
}

/** Median of a non-empty list. */
function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface LatencyOptions {
  /** Milliseconds since some epoch (Date.now in production; tests pass a manual clock). */
  now: () => number;
  timers: Timers;
  /** The routes to rank (the controller's desired state); read at each round. */
  routes: () => readonly DesiredRoute[];
  probe?: Probe;
  intervalMs?: number;
  /** A route's ranking changed: the reconciler should push (desired() now renders the new order). */
  onChange: () => void;
  log?: Logger;
}

/**
 * Probes the upstreams of every `least_latency` route each `intervalMs`, and holds the ranking
 * apply() writes into the desired state. Emits `round` after each probe round.
 */
export class LatencyRanker extends EventEmitter {
  private readonly samples = new Map<string, number[]>();
  /** Route id → committed order and when it was committed. */
  private readonly ranked = new Map<string, { order: string[]; at: number }>();
  /** Input route → its ranked copy and the order it was made from (apply() hands out stable objects). */
  private readonly applied = new WeakMap<DesiredRoute, { order: readonly string[]; route: DesiredRoute }>();
  private readonly probe: Probe;
  private timer: unknown = null;
  private stopped = true;

  constructor(private readonly opts: LatencyOptions) {
    super();
    this.probe = opts.probe ?? httpProbe();
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) this.opts.timers.clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.opts.timers.setTimeout(() => {
      this.timer = null;
      void this.round().finally(() => this.schedule());
    }, this.opts.intervalMs ?? PROBE_INTERVAL_MS);
  }

  /** The median latency of `dial` over its last WINDOW probes for route `id` (undefined before any sample). */
  latency(id: string, dial: string): number | undefined {
    const s = this.samples.get(`${id} ${dial}`);
    return s ? median(s) : undefined;
  }

  /** The committed order of route `id`'s upstreams (undefined before its first ranking). */
  order(id: string): readonly string[] | undefined {
    return this.ranked.get(id)?.order;
  }

  /** One probe round over every least_latency route; commits rankings that pass the hysteresis. */
  async round(): Promise<void> {
    const routes = this.opts.routes().filter(ranksByLatency);
    const live = new Set(routes.map((r) => r.id));
    for (const id of [...this.ranked.keys()]) if (!live.has(id)) this.ranked.delete(id);
    for (const key of [...this.samples.keys()]) if (!live.has(key.slice(0, key.indexOf(' ')))) this.samples.delete(key);
    await Promise.all(
      routes.flatMap((r) =>
        r.upstreams.map(async (dial) => {
          const key = `${r.id} ${dial}`;
          // A failed probe counts as the timeout: the upstream drops down the ranking, not out of it.
          const ms = await this.probe(dial, r.health?.active?.path ?? '/').catch(() => PROBE_TIMEOUT_MS);
          this.samples.set(key, [...(this.samples.get(key) ?? []), ms].slice(-WINDOW));
        }),
      ),
    );
    let changed = false;
    for (const r of routes) changed = this.rank(r) || changed;
    if (changed) this.opts.onChange();
    this.emit('round', changed);
  }

  /** Commits a new order for `r` when due; true when it changed. */
  private rank(r: DesiredRoute): boolean {
    if (r.upstreams.some((d) => (this.samples.get(`${r.id} ${d}`)?.length ?? 0) < MIN_SAMPLES)) return false;
    const lat = (dial: string) => this.latency(r.id, dial)!;
    const candidate = [...r.upstreams].sort((a, b) => lat(a) - lat(b) || (a < b ? -1 : 1));
    const now = this.opts.now();
    const prev = this.ranked.get(r.id);
    if (prev && prev.order.length === candidate.length && prev.order.every((d) => r.upstreams.includes(d))) {
      const leader = prev.order[0]!;
      const best = candidate[0]!;
      if (best === leader) return false;
      const [l, b] = [lat(leader), lat(best)];
      if (l - b <= Math.max(HYSTERESIS_MS, HYSTERESIS_RATIO * l)) return false;
      if (now - prev.at < MIN_CHANGE_INTERVAL_MS) return false;
    }
    this.ranked.set(r.id, { order: candidate, at: now });
    this.opts.log?.info('least_latency ranking changed', { route: r.id, order: candidate, ms: candidate.map((d) => Math.round(lat(d))) });
    return true;
  }

  /** `desired` with each ranked least_latency route's upstreams in ranked order (unranked ones as written). */
  apply(desired: DesiredProxy): DesiredProxy {
    if (!desired.routes.some((r) => this.ranked.has(r.id))) return desired;
    return {
      ...desired,
      routes: desired.routes.map((r) => {
        const order = this.ranked.get(r.id)?.order;
        if (!order || !ranksByLatency(r)) return r;
        // The same object while neither route nor ranking changed: render() caches per route object.
        const hit = this.applied.get(r);
        if (hit?.order === order) return hit.route;
        const ranked = order.filter((d) => r.upstreams.includes(d));
        const out = { ...r, upstreams: [...ranked, ...r.upstreams.filter((d) => !ranked.includes(d))] };
        this.applied.set(r, { order, route: out });
        return out;
      }),
    };
  }
}
