// Dead-by-health backends and their recovery probes (issue 15, item 3: "default recovery probing
// every 60 s for a backend marked dead"). Caddy 2.6.2's passive health skips a failed backend only
// for `fail_duration`, then sends it live traffic again whether it is up or not, and nothing probes
// it unless the route has an active check. So the controller, HAProxy-like, marks such a backend
// down, leaves it out of the rendered config (as a by-hand dead one), and probes it back every
// `health.recovery_interval`. Caddy stays the data plane: the probes are the controller's own
// requests, never proxied traffic. Clock and timers are injected; the marks live in memory only.
import { EventEmitter } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import type { Logger } from '../log/index.js';
import { durationMs } from '../model/route-balancing.js';
import { DEFAULT_RECOVERY_INTERVAL } from '../model/route-health.js';
import type { Timers } from '../timers.js';
import type { UpstreamStatus } from './backend-health.js';
import { FAIL_DURATION } from './health.js';
import type { DesiredProxy, DesiredRoute } from './types.js';

/** How often Caddy's upstream pool is read: a failure is counted for fail_duration (30 s by default), so 5 s sees it in time and costs one admin GET (one INFO log line in Caddy) per 5 s. */
export const RECOVERY_WATCH_MS = 5_000;
/** A recovery probe that takes longer counts as "still down": Caddy's own active checks use the same 5 s. */
export const RECOVERY_PROBE_TIMEOUT_MS = 5_000;
/** The shortest wait between two watcher runs, whatever a probe's due time says (no busy loop). */
const MIN_DELAY_MS = 1_000;

/** Why a backend is down, as the views show it. */
export const recoveryReason = (intervalMs: number): string => `failed requests; probed every ${intervalMs >= 1000 && intervalMs % 1000 === 0 ? `${intervalMs / 1000}s` : `${intervalMs}ms`}`;

/** What a recovery probe needs: where to connect and how to speak to it. */
export interface ProbeTarget {
  /** `host:port` (`[v6]:port`) as Caddy dials it. */
  dial: string;
  /** The Host header: the route's first host. */
  host: string;
  /** HTTPS to the upstream (the route's `headers.upstream_tls`): off, verify or insecure. */
  tls: 'off' | 'verify' | 'insecure';
  /** SNI and the name the certificate must carry when verified (default: the dialled host). */
  serverName?: string;
}

/** One probe: true when the backend answered with a status below 500, false on anything else (error, timeout, 5xx). */
export type RecoveryProbe = (target: ProbeTarget) => Promise<boolean>;

/** A backend marked dead by health. */
export interface HealthDead {
  /** When it was marked (ms, the injected clock). */
  since: number;
  /** When it is probed next (ms). */
  nextProbeAt: number;
  /** The route's recovery interval (ms). */
  intervalMs: number;
}

/** `GET /` to the target with its Host header, HTTP or HTTPS; alive when the status is below 500. */
export const httpRecoveryProbe: RecoveryProbe = (t) =>
  new Promise((resolve) => {
    const i = t.dial.lastIndexOf(':');
    const host = t.dial.slice(0, i).replace(/^\[|\]$/g, '');
    const options = { host, port: Number(t.dial.slice(i + 1)), path: '/', method: 'GET', headers: { host: t.host }, agent: false as const, timeout: RECOVERY_PROBE_TIMEOUT_MS };
    const done = (res: http.IncomingMessage) => {
      res.resume();
      resolve((res.statusCode ?? 599) < 500);
    };
    const req = t.tls === 'off' ? http.request(options, done) : https.request({ ...options, rejectUnauthorized: t.tls === 'verify', ...(t.serverName ? { servername: t.serverName } : {}) }, done);
    req.on('timeout', () => req.destroy(new Error('probe timed out')));
    req.on('error', () => resolve(false));
    req.end();
  });

/**
 * Whether the controller watches a route: it has passive health in Caddy (`health.passive`, or
 * the default passive check of a route with several upstreams) and no active check (Caddy's own
 * active probes already bring those backends back).
 */
export const watchedByRecovery = (r: DesiredRoute): boolean => !r.health?.active && r.health_path === null && (r.health?.passive !== undefined || r.upstreams.length > 1);

/** The route's recovery interval in ms. */
export const recoveryIntervalMs = (r: DesiredRoute): number => durationMs(r.health?.recovery_interval ?? DEFAULT_RECOVERY_INTERVAL);

export interface RecoveryOptions {
  /** Milliseconds since the epoch (Date.now in production; tests pass a manual clock). */
  now: () => number;
  timers: Timers;
  /** The explicit routes as built from the store (before apply()); read at each run. */
  routes: () => readonly DesiredRoute[];
  /** Caddy's upstream pool (`GET /reverse_proxy/upstreams`, parsed); rejects when Caddy does not answer. */
  pool: () => Promise<Map<string, UpstreamStatus>>;
  probe?: RecoveryProbe;
  watchMs?: number;
  /** The set of dead backends changed: the reconciler should push (apply() now renders it). */
  onChange: () => void;
  log?: Logger;
}

/** What one run did (also emitted as `run`). */
export interface RecoveryRun {
  /** `routeId dial` marked dead by health in this run. */
  marked: string[];
  /** `routeId dial` probed alive and brought back. */
  revived: string[];
  /** `routeId dial` probed and still down. */
  stillDown: string[];
  /** Caddy's pool could not be read (nothing marked in this run). */
  poolError?: string;
}

/**
 * Watches Caddy's passive failure counts for the explicit routes without an active check, holds the
 * backends it marked dead, and probes them back. `apply(desired)` leaves them out of their route.
 */
export class RecoveryWatcher extends EventEmitter {
  /** Route id → dial → its mark. */
  private readonly dead = new Map<string, Map<string, HealthDead>>();
  /** `routeId dial` brought back, → when: not marked again until Caddy's count fell below max_fails (or fail_duration passed). */
  private readonly cooling = new Map<string, number>();
  /** Input route → the copy without its dead dials and the mark map it was made from. */
  private readonly applied = new WeakMap<DesiredRoute, { key: string; route: DesiredRoute }>();
  private readonly probe: RecoveryProbe;
  private timer: unknown = null;
  private stopped = true;

  constructor(private readonly opts: RecoveryOptions) {
    super();
    this.probe = opts.probe ?? httpRecoveryProbe;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(this.opts.watchMs ?? RECOVERY_WATCH_MS);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) this.opts.timers.clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = this.opts.timers.setTimeout(() => {
      this.timer = null;
      void this.run()
        .catch((err: unknown) => this.opts.log?.warn('recovery run failed', { error: String(err) }))
        .finally(() => this.schedule(this.nextDelay()));
    }, ms);
  }

  /** Until the next run: the watch interval, or sooner when a probe is due before it. */
  private nextDelay(): number {
    const watch = this.opts.watchMs ?? RECOVERY_WATCH_MS;
    let due = Infinity;
    for (const marks of this.dead.values()) for (const m of marks.values()) due = Math.min(due, m.nextProbeAt);
    return Math.max(MIN_DELAY_MS, Math.min(watch, due - this.opts.now()));
  }

  /** The backends of route `id` marked dead by health (dial → mark); empty when none. */
  marks(id: string): ReadonlyMap<string, HealthDead> {
    return this.dead.get(id) ?? new Map();
  }

  /** Every mark, as `[routeId, dial, mark]`. */
  all(): [string, string, HealthDead][] {
    return [...this.dead].flatMap(([id, m]) => [...m].map(([dial, mark]): [string, string, HealthDead] => [id, dial, mark]));
  }

  /** One run: forget marks of routes or dials that went, mark from Caddy's pool, probe what is due. */
  async run(): Promise<RecoveryRun> {
    const now = this.opts.now();
    const routes = this.opts.routes();
    const byId = new Map(routes.map((r) => [r.id, r]));
    const out: RecoveryRun = { marked: [], revived: [], stillDown: [] };
    let changed = false;
    // A route removed, no longer watched (an active check added), or a dial no longer in it: its mark goes.
    for (const [id, marks] of this.dead) {
      const r = byId.get(id);
      for (const dial of [...marks.keys()]) {
        if (r && watchedByRecovery(r) && r.upstreams.includes(dial)) continue;
        marks.delete(dial);
        if (r) changed = true;
      }
      if (marks.size === 0) this.dead.delete(id);
    }
    for (const key of [...this.cooling.keys()]) {
      const [id, dial] = key.split(' ') as [string, string];
      if (!byId.get(id)?.upstreams.includes(dial)) this.cooling.delete(key);
    }

    let pool: Map<string, UpstreamStatus> | null = null;
    // Caddy logs each admin request at INFO: no watched route, no read.
    if (routes.some(watchedByRecovery))
      try {
        pool = await this.opts.pool();
      } catch (err) {
        out.poolError = err instanceof Error ? err.message : String(err);
      }
    if (pool)
      for (const r of routes) {
        if (!watchedByRecovery(r)) continue;
        const maxFails = r.health?.passive?.max_fails ?? 1;
        const failMs = durationMs(r.health?.passive?.fail_duration ?? FAIL_DURATION);
        const marks = this.dead.get(r.id) ?? new Map<string, HealthDead>();
        let live = r.upstreams.filter((d) => !marks.has(d)).length;
        for (const dial of r.upstreams) {
          if (marks.has(dial)) continue;
          const key = `${r.id} ${dial}`;
          const fails = pool.get(dial)?.fails ?? 0;
          const cooledAt = this.cooling.get(key);
          if (cooledAt !== undefined) {
            // Failures counted before it came back expire within fail_duration; a fresh low count ends the wait at once.
            if (fails < maxFails || now - cooledAt >= failMs) this.cooling.delete(key);
            else continue;
          }
          // Never the last backend: a route always keeps one upstream in Caddy.
          if (fails < maxFails || live <= 1) continue;
          const intervalMs = recoveryIntervalMs(r);
          marks.set(dial, { since: now, nextProbeAt: now + intervalMs, intervalMs });
          this.dead.set(r.id, marks);
          live--;
          changed = true;
          out.marked.push(key);
          this.opts.log?.warn('backend marked down after failed requests', { route: r.id, backend: dial, fails, next_probe_in_ms: intervalMs });
        }
      }

    const due = [...this.dead].flatMap(([id, marks]) => [...marks].filter(([, m]) => m.nextProbeAt <= now).map(([dial, m]) => ({ id, dial, m })));
    await Promise.all(
      due.map(async ({ id, dial, m }) => {
        const r = byId.get(id)!;
        const alive = await this.probe(probeTarget(r, dial)).catch(() => false);
        const key = `${id} ${dial}`;
        if (!alive) {
          m.nextProbeAt = now + m.intervalMs;
          out.stillDown.push(key);
          return;
        }
        this.dead.get(id)?.delete(dial);
        if (this.dead.get(id)?.size === 0) this.dead.delete(id);
        this.cooling.set(key, now);
        changed = true;
        out.revived.push(key);
        this.opts.log?.info('backend answered its recovery probe: back in rotation', { route: id, backend: dial });
      }),
    );
    if (changed) this.opts.onChange();
    this.emit('run', out);
    return out;
  }

  /** `desired` with each route's dead-by-health dials left out (the same objects while nothing changed). */
  apply(desired: DesiredProxy): DesiredProxy {
    if (this.dead.size === 0 || !desired.routes.some((r) => this.dead.has(r.id))) return desired;
    return {
      ...desired,
      routes: desired.routes.map((r) => {
        const marks = this.dead.get(r.id);
        if (!marks) return r;
        const upstreams = r.upstreams.filter((d) => !marks.has(d));
        // Never empty: run() never marks the last one, but a route may have lost upstreams since.
        if (upstreams.length === r.upstreams.length || upstreams.length === 0) return r;
        const key = upstreams.join(' ');
        const hit = this.applied.get(r);
        if (hit?.key === key) return hit.route;
        const out = { ...r, upstreams };
        this.applied.set(r, { key, route: out });
        return out;
      }),
    };
  }
}

/** How to probe `dial` of route `r`: its first host (a wildcard's parent name) as Host, TLS as its upstream_tls says. */
export function probeTarget(r: DesiredRoute, dial: string): ProbeTarget {
  const tls = r.headers?.upstream_tls ?? 'off';
  const serverName = r.headers?.upstream_tls_server_name;
  return { dial, host: (r.hosts[0] ?? '').replace(/^\*\./, ''), tls, ...(tls !== 'off' && serverName ? { serverName } : {}) };
}
