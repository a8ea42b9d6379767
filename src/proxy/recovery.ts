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
import { isIP } from 'node:net';
import type { Logger } from '../log/index.js';
import { durationMs } from '../model/route-balancing.js';
import { DEFAULT_RECOVERY_INTERVAL } from '../model/route-health.js';
import type { Timers } from '../timers.js';
import type { UpstreamStatus } from './backend-health.js';
import { FAIL_DURATION } from './health.js';
import { dialHostPort, type DesiredProxy, type DesiredRoute } from './types.js';

/** How often Caddy's upstream pool is read: a failure is counted for fail_duration (30 s by default), so 5 s sees it in time and costs one admin GET (one INFO log line in Caddy) per 5 s. */
export const RECOVERY_WATCH_MS = 5_000;
/** A recovery probe's hard deadline (headers included): a slower answer counts as down, as Caddy's own active checks (5 s) judge it. */
export const RECOVERY_PROBE_TIMEOUT_MS = 5_000;
/** The shortest wait between two watcher runs, whatever a probe's due time says (no busy loop). */
const MIN_DELAY_MS = 1_000;
/** A backend marked again this soon after it came back is flapping: each such mark doubles its recovery interval (each comeback is a Caddy load). */
export const FLAP_WINDOW_MS = 5 * 60_000;
/** The backoff stops at this many times the route's recovery interval: a flapping backend is still tried every 10 minutes at the default 60 s. */
export const BACKOFF_CAP = 10;

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
  /** SNI and the name the certificate must carry when verified (default: the dialled host, as Caddy does). */
  serverName?: string;
}

/** One probe: the status the backend answered, or null (error, refused, aborted). Aborting `signal` ends it at once. */
export type RecoveryProbe = (target: ProbeTarget, signal: AbortSignal) => Promise<number | null>;

/** A backend marked dead by health. */
export interface HealthDead {
  /** When it was marked (ms, the injected clock). */
  since: number;
  /** When it is probed next (ms). */
  nextProbeAt: number;
  /** Its recovery interval (ms): the route's, doubled for each time it came back and failed again soon after (backoff). */
  intervalMs: number;
}

/** The TLS options of a probe: SNI and the verified name are the dialled host (or upstream_tls_server_name), never the Host header. */
export function probeTlsOptions(t: ProbeTarget, host: string): { rejectUnauthorized: boolean; servername: string } {
  // Node would derive SNI and the name it verifies from the Host header; Caddy (Go) uses the dialled host,
  // and no SNI for an IP address. The probe must judge the certificate as Caddy's requests will.
  return { rejectUnauthorized: t.tls === 'verify', servername: t.serverName ?? (isIP(host) ? '' : host) };
}

/** `GET /` to the target with its Host header, HTTP or HTTPS: its status as soon as the headers arrive (the body is never read). */
export const httpRecoveryProbe: RecoveryProbe = (t, signal) =>
  new Promise((resolve) => {
    const { host, port } = dialHostPort(t.dial);
    const options = { host, port, path: '/', method: 'GET', headers: { host: t.host }, agent: false as const, signal };
    const done = (res: http.IncomingMessage) => {
      // The status is all we need: a streaming body must not keep the socket (or the watcher) busy.
      res.destroy();
      resolve(res.statusCode ?? null);
    };
    const req = t.tls === 'off' ? http.request(options, done) : https.request({ ...options, ...probeTlsOptions(t, host) }, done);
    req.on('error', () => resolve(null));
    req.end();
  });

/** Whether a probe's answer counts as down by the route's passive criteria: no answer, a 5xx, or one of `unhealthy_status`. */
export function probeFailed(r: DesiredRoute, status: number | null): boolean {
  return status === null || status >= 500 || (r.health?.passive?.unhealthy_status ?? []).includes(status);
}

/** A probe's deadline for route `r`: RECOVERY_PROBE_TIMEOUT_MS, or its `unhealthy_latency` when shorter (a slower answer is down anyway). */
export const probeDeadlineMs = (r: DesiredRoute): number => Math.min(RECOVERY_PROBE_TIMEOUT_MS, r.health?.passive?.unhealthy_latency ? durationMs(r.health.passive.unhealthy_latency) : Infinity);

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
  /** How often Caddy's pool is read at most (default RECOVERY_WATCH_MS; shorter when a watched fail_duration is). */
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
  /** `routeId dial` Caddy counted as failing but that answered its confirming probe: left in. */
  spared: string[];
  /** Caddy's pool could not be read (nothing marked in this run). */
  poolError?: string;
}

/**
 * Watches Caddy's passive failure counts for the explicit routes without an active check, holds the
 * backends it marked dead, and probes them back. `apply(desired)` leaves them out of their route.
 * Every mark and every comeback is one Caddy load, which closes every proxied websocket on the node:
 * a backend is marked only when its own probe fails too, and one that keeps failing soon after it
 * came back waits longer each time (backoff).
 */
export class RecoveryWatcher extends EventEmitter {
  /** Route id → dial → its mark. */
  private readonly dead = new Map<string, Map<string, HealthDead>>();
  /** `routeId dial` brought back or found alive by its confirming probe, → when: not probed again until Caddy's count fell below max_fails (or fail_duration passed). */
  private readonly cooling = new Map<string, number>();
  /** `routeId dial` → when it last came back (null: marked now) and how many times in a row it was marked again within FLAP_WINDOW_MS of that. */
  private readonly flaps = new Map<string, { backAt: number | null; strikes: number }>();
  /** Input route → the copy without its dead dials and the mark map it was made from. */
  private readonly applied = new WeakMap<DesiredRoute, { key: string; route: DesiredRoute }>();
  private readonly probe: RecoveryProbe;
  private timer: unknown = null;
  private stopped = true;
  /** Aborts the probes of the run in progress (stop()). */
  private abort = new AbortController();
  /** The run in progress, awaited by stop(). */
  private running: Promise<unknown> | null = null;

  constructor(private readonly opts: RecoveryOptions) {
    super();
    this.probe = opts.probe ?? httpRecoveryProbe;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.abort = new AbortController();
    this.schedule(this.watchMs());
  }

  /** Stops the timer, aborts the probes in flight and waits for the run in progress to end. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) this.opts.timers.clearTimeout(this.timer);
    this.timer = null;
    this.abort.abort();
    await this.running;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = this.opts.timers.setTimeout(() => {
      this.timer = null;
      const run = this.run()
        .catch((err: unknown) => this.opts.log?.warn('recovery run failed', { error: String(err) }))
        .finally(() => {
          this.running = null;
          this.schedule(this.nextDelay());
        });
      this.running = run;
    }, ms);
  }

  /**
   * How often Caddy's pool is read: RECOVERY_WATCH_MS, or half the shortest fail_duration of a
   * watched route when that is shorter (a failure counted for less than the watch would go unseen),
   * never below MIN_DELAY_MS.
   */
  watchMs(): number {
    let ms = this.opts.watchMs ?? RECOVERY_WATCH_MS;
    for (const r of this.opts.routes()) if (watchedByRecovery(r) && r.health?.passive?.fail_duration) ms = Math.min(ms, durationMs(r.health.passive.fail_duration) / 2);
    return Math.max(MIN_DELAY_MS, ms);
  }

  /** Until the next run: the watch interval, or sooner when a probe is due before it. */
  private nextDelay(): number {
    let due = Infinity;
    for (const marks of this.dead.values()) for (const m of marks.values()) due = Math.min(due, m.nextProbeAt);
    return Math.max(MIN_DELAY_MS, Math.min(this.watchMs(), due - this.opts.now()));
  }

  /**
   * The backends of route `id` that apply() leaves out now (dial → mark); empty when none. The
   * views show these `down`: a mark of a route whose every upstream is marked is not shown (apply()
   * keeps them all in Caddy; the next run drops such marks).
   */
  marks(id: string): ReadonlyMap<string, HealthDead> {
    const marks = this.dead.get(id);
    if (!marks) return new Map();
    const r = this.opts.routes().find((x) => x.id === id);
    return r && r.upstreams.some((d) => !marks.has(d)) ? marks : new Map();
  }

  /** Every mark, as `[routeId, dial, mark]`. */
  all(): [string, string, HealthDead][] {
    return [...this.dead].flatMap(([id, m]) => [...m].map(([dial, mark]): [string, string, HealthDead] => [id, dial, mark]));
  }

  /**
   * Forgets the mark of `dial` on route `id` (an operator's alive/dead by hand wins over it): true
   * when there was one. The caller triggers the reconciler.
   */
  clear(id: string, dial: string): boolean {
    const marks = this.dead.get(id);
    if (!marks?.delete(dial)) return false;
    if (marks.size === 0) this.dead.delete(id);
    // Caddy may still count its old failures: not probed for a mark again until that count is over.
    this.cooling.set(`${id} ${dial}`, this.opts.now());
    return true;
  }

  /** Probes `dial` of `r` within its deadline (aborted by stop()); true when it is down by the route's criteria. */
  private async down(r: DesiredRoute, dial: string): Promise<boolean> {
    const ac = new AbortController();
    const onStop = () => ac.abort();
    this.abort.signal.addEventListener('abort', onStop);
    if (this.abort.signal.aborted) ac.abort();
    const deadline = this.opts.timers.setTimeout(() => ac.abort(), probeDeadlineMs(r));
    try {
      return probeFailed(r, await this.probe(probeTarget(r, dial), ac.signal).catch(() => null));
    } finally {
      this.opts.timers.clearTimeout(deadline);
      this.abort.signal.removeEventListener('abort', onStop);
    }
  }

  /** One run: forget marks of routes or dials that went, mark from Caddy's pool (after a failed probe), probe what is due. */
  async run(): Promise<RecoveryRun> {
    const now = this.opts.now();
    const routes = this.opts.routes();
    const byId = new Map(routes.map((r) => [r.id, r]));
    const out: RecoveryRun = { marked: [], revived: [], stillDown: [], spared: [] };
    let changed = false;
    // A route removed, no longer watched (an active check added), or a dial no longer in it: its mark goes.
    for (const [id, marks] of this.dead) {
      const r = byId.get(id);
      for (const dial of [...marks.keys()]) {
        if (r && watchedByRecovery(r) && r.upstreams.includes(dial)) continue;
        marks.delete(dial);
        if (r) changed = true;
      }
      // Every upstream left is marked: apply() keeps them all in Caddy, so the marks would only show a `down` Caddy still serves.
      if (r && r.upstreams.every((d) => marks.has(d))) marks.clear();
      if (marks.size === 0) this.dead.delete(id);
    }
    for (const key of [...this.cooling.keys(), ...this.flaps.keys()]) {
      const [id, dial] = key.split(' ') as [string, string];
      const backAt = this.flaps.get(key)?.backAt;
      // Healthy for FLAP_WINDOW_MS since it came back: its backoff is over.
      if (backAt != null && now - backAt >= FLAP_WINDOW_MS) this.flaps.delete(key);
      if (byId.get(id)?.upstreams.includes(dial)) continue;
      this.cooling.delete(key);
      this.flaps.delete(key);
    }

    let pool: Map<string, UpstreamStatus> | null = null;
    // Caddy logs each admin request at INFO: no watched route, no read.
    if (routes.some(watchedByRecovery))
      try {
        pool = await this.opts.pool();
      } catch (err) {
        out.poolError = err instanceof Error ? err.message : String(err);
      }
    const candidates: { r: DesiredRoute; dial: string; fails: number }[] = [];
    if (pool)
      for (const r of routes) {
        if (!watchedByRecovery(r)) continue;
        const maxFails = r.health?.passive?.max_fails ?? 1;
        const failMs = durationMs(r.health?.passive?.fail_duration ?? FAIL_DURATION);
        const marks = this.dead.get(r.id);
        for (const dial of r.upstreams) {
          if (marks?.has(dial)) continue;
          const key = `${r.id} ${dial}`;
          const fails = pool.get(dial)?.fails ?? 0;
          const cooledAt = this.cooling.get(key);
          if (cooledAt !== undefined) {
            // Failures counted before it came back expire within fail_duration; a fresh low count ends the wait at once.
            if (fails < maxFails || now - cooledAt >= failMs) this.cooling.delete(key);
            else continue;
          }
          if (fails >= maxFails) candidates.push({ r, dial, fails });
        }
      }

    const due = [...this.dead].flatMap(([id, marks]) => [...marks].filter(([, m]) => m.nextProbeAt <= now).map(([dial, m]) => ({ id, dial, m })));
    // One probe each, all at once: the candidates' confirming probes and the due recovery probes.
    const [confirmed, recovered] = await Promise.all([
      Promise.all(candidates.map(async (c) => ({ ...c, down: await this.down(c.r, c.dial) }))),
      Promise.all(due.map(async (d) => ({ ...d, down: await this.down(byId.get(d.id)!, d.dial) }))),
    ]);
    // stop() during the probes: nothing decided from aborted probes.
    if (this.abort.signal.aborted) {
      this.emit('run', out);
      return out;
    }
    const after = this.opts.now();
    for (const { r, dial, fails, down } of confirmed) {
      const key = `${r.id} ${dial}`;
      if (!down) {
        // Caddy counted failures but the backend answers: leave it in, and do not ask again until the count is over.
        this.cooling.set(key, after);
        out.spared.push(key);
        continue;
      }
      const marks = this.dead.get(r.id) ?? new Map<string, HealthDead>();
      // Never the last backend: a route always keeps one upstream in Caddy.
      if (r.upstreams.filter((d) => !marks.has(d)).length <= 1) continue;
      const intervalMs = this.backoff(key, recoveryIntervalMs(r), after);
      marks.set(dial, { since: after, nextProbeAt: after + intervalMs, intervalMs });
      this.dead.set(r.id, marks);
      changed = true;
      out.marked.push(key);
      this.opts.log?.warn('backend marked down after failed requests and a failed probe', { route: r.id, backend: dial, fails, next_probe_in_ms: intervalMs });
    }
    for (const { id, dial, m, down } of recovered) {
      const key = `${id} ${dial}`;
      if (this.dead.get(id)?.get(dial) !== m) continue;
      if (down) {
        m.nextProbeAt = after + m.intervalMs;
        out.stillDown.push(key);
        continue;
      }
      this.clear(id, dial);
      this.flaps.set(key, { backAt: after, strikes: this.flaps.get(key)?.strikes ?? 0 });
      changed = true;
      out.revived.push(key);
      this.opts.log?.info('backend answered its recovery probe: back in rotation', { route: id, backend: dial });
    }
    if (changed) this.opts.onChange();
    this.emit('run', out);
    return out;
  }

  /** The recovery interval of a backend marked now: the route's, doubled per comeback that failed within FLAP_WINDOW_MS, at most BACKOFF_CAP times it. */
  private backoff(key: string, baseMs: number, now: number): number {
    const f = this.flaps.get(key);
    const strikes = f?.backAt != null && now - f.backAt < FLAP_WINDOW_MS ? f.strikes + 1 : 0;
    this.flaps.set(key, { backAt: null, strikes });
    return Math.min(baseMs * 2 ** strikes, baseMs * BACKOFF_CAP);
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
