// The Caddy reconciler: keeps Caddy running the render of the desired state.
//
// Contract:
// - trigger() is cheap and may be called on every store change. A trigger after a quiet spell
//   (none for debounceMs, nothing in flight) pushes at once; the rest of a burst is coalesced
//   (debounce, capped by a max wait from the burst's first trigger). One push at a time; triggers
//   during a push cause exactly one more push after it, with the state as of then.
// - Every push renders the whole document; a document whose hash Caddy is known to run is not
//   pushed again. "Known to run" is checked every driftPollMs: Caddy's revision (admin /metrics:
//   start time + count of config-changing admin requests, a request Caddy does not log) and,
//   only when that moved since the marker last matched, the marker `@id`; a missing or different
//   marker (Caddy restarted, foreign config) re-applies at once. When unsure (first push, after
//   an outage) the marker is read first: a match adopts, no reload.
// - CaddyRejected: the routes to blame are found without touching the live config (quarantine.ts),
//   reported `error` with Caddy's text and left out until their content changes; the rest is pushed.
// - CaddyUnavailable: desired state is kept; retried with backoff (RETRY_MIN_MS doubling to RETRY_MAX_MS).
import { caddyApplies, caddyApplyDuration, caddyLoads, caddyUp as caddyUpGauge, proxyRoutes } from '../metrics.js';
import { logger, type Logger } from '../log/index.js';
import { CaddyRejected, CaddyUnavailable, type CaddyApi } from './caddy.js';
import type { AppliedStatus } from '../model/route.js';
import { ISOLATE_BUDGET_MS, caddyMessage, isolate, routeHash, type IsolateResult, type Render, type Validate } from './quarantine.js';
import { canonicalJson, markerId as defaultMarkerId } from './render.js';
import type { DesiredProxy, Rendered } from './types.js';
import { systemTimers, type Timers } from '../timers.js';

/** First retry after Caddy did not answer: a restart under a supervisor takes ~100 ms. */
export const RETRY_MIN_MS = 250;
/** Backoff ceiling: a down Caddy costs one refused connection per 5 s. Drift polling keeps probing meanwhile. */
export const RETRY_MAX_MS = 5_000;
/** Load→reject→isolate rounds per push. With a validator one round suffices; without, each round removes ≥1 route. */
export const MAX_REJECT_ROUNDS = 10;


/**
 * What one drift poll found. `unchanged`: Caddy's revision is the one the marker last matched
 * under (nothing else read); `verified`: the revision moved and the marker still matches;
 * `drift`: a push was started (marker missing or different, or Caddy came back before anything
 * was applied); `idle`: nothing applied yet and Caddy answers; `down`: Caddy did not answer;
 * `failed`: an unexpected answer (logged); `skipped`: a push was in flight or ran meanwhile.
 */
export type PollOutcome = 'unchanged' | 'verified' | 'drift' | 'idle' | 'down' | 'failed' | 'skipped';

export interface ReconcilerOptions {
  /** The state Caddy should run; read at each push (routes sorted by id). */
  desired: () => DesiredProxy;
  /** Pure: same input, same config and hash. */
  render: Render;
  caddy: CaddyApi;
  /** Checks a config without touching the live one (validateWithCaddy); absent → position parsing only. */
  validate?: Validate;
  /** Every desired route's status after each push that reached Caddy; called only when it changed. */
  onStatus: (statuses: Map<string, AppliedStatus>) => void;
  /** Quiet time before a push; default 150 ms. */
  debounceMs?: number;
  /** Longest a trigger waits under a continuous burst; default 1 s. */
  maxWaitMs?: number;
  /** Drift poll period; default 1 s, so a restarted Caddy is restored in < 2 s (poll + load). */
  driftPollMs?: number;
  /** Called after every drift poll with what it found (tests wait on it); must not throw. */
  onPoll?: (outcome: PollOutcome) => void;
  /** The marker `@id` the render carries for a hash; default `dnsproxy-cfg-<first 16 hex>`. */
  markerId?: (hash: string) => string;
  now?: () => number;
  timers?: Timers;
  log?: Logger;
}

export interface ReconcilerState {
  caddyUp: boolean;
  lastHash: string | null;
  lastAppliedAt: number | null;
  lastError: string | null;
  applies: number;
  /** Loads Caddy accepted, by reason: startup, change (explicit routes), restore (drift). */
  loads: { startup: number; change: number; restore: number; close_sessions: number };
  failures: number;
  quarantined: string[];
  /** Caddy is believed to run the render of the current desired state (minus quarantined routes). */
  inSync: boolean;
}

/** `/config/...` path of the `@id` whose value is `marker`, or null when the config has none. */
export function findMarkerPath(config: unknown, marker: string): string | null {
  const walk = (v: unknown, path: string[]): string[] | null => {
    if (!v || typeof v !== 'object') return null;
    const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x] as const) : Object.entries(v as Record<string, unknown>);
    for (const [k, x] of entries) {
      if (k === '@id' && x === marker) return [...path, k];
      const found = walk(x, [...path, k]);
      if (found) return found;
    }
    return null;
  };
  const p = walk(config, []);
  return p ? `/config/${p.map(encodeURIComponent).join('/')}` : null;
}

/** Routes a renderer reports it left out (`Rendered.skipped`, when the renderer has it). */
function skippedBy(rendered: Rendered): { id: string; reason: string }[] {
  const list = (rendered as { skipped?: unknown }).skipped;
  if (!Array.isArray(list)) return [];
  return (list as unknown[]).filter((x): x is { id: string; reason: string } => {
    const o = x as { id?: unknown; reason?: unknown } | null;
    return typeof o?.id === 'string' && typeof o.reason === 'string';
  });
}

export class Reconciler {
  private readonly o: Required<Omit<ReconcilerOptions, 'validate' | 'onPoll'>> & Pick<ReconcilerOptions, 'validate' | 'onPoll'>;
  private started = false;
  private stopped = false;
  private dirty = false;
  private inflight: Promise<void> | null = null;
  private debounceTimer: unknown = null;
  private debounceDue = 0;
  private burstStart: number | null = null;
  private lastTriggerAt = -Infinity;
  private retryTimer: unknown = null;
  private retryDelay = RETRY_MIN_MS;
  private pollTimer: unknown = null;
  private polling: Promise<void> | null = null;

  private up = false;
  /** Caddy may not be running lastHash (never checked, restarted, foreign load): do not skip the push. */
  private drift = true;
  private lastHash: string | null = null;
  private targetHash: string | null = null;
  private lastAppliedAt: number | null = null;
  private lastError: string | null = null;
  private applies = 0;
  private failures = 0;
  private appliedDoc: DesiredProxy | null = null;
  private appliedConfig: Record<string, unknown> | null = null;
  private appliedRoutes = new Map<string, string>();
  /** Routes the renderer left out of the last render it produced (id → reason): reported `error`. */
  private skipped = new Map<string, string>();
  private markerPath: string | null = null;
  /** Bumped per successful load: a marker read that started before it is stale. */
  private generation = 0;
  /** Caddy's revision when the marker last matched, in this generation: the same revision needs no marker read. */
  private verified: { revision: string; generation: number } | null = null;
  private readonly quarantine = new Map<string, { hash: string; error: string }>();
  private lastReported = '';
  /** Loads Caddy accepted, by reason (also dnsproxy_caddy_loads_total). */
  private readonly loadsBy = { startup: 0, change: 0, restore: 0, close_sessions: 0 };
  /** A load is wanted even if the config is unchanged (closeSessions()). */
  private forceLoad = false;

  constructor(opts: ReconcilerOptions) {
    this.o = {
      debounceMs: 150,
      maxWaitMs: 1_000,
      driftPollMs: 1_000,
      markerId: defaultMarkerId,
      now: Date.now,
      timers: systemTimers,
      log: logger('proxy'),
      ...opts,
    };
  }

  /** Applies the current state now and starts drift polling. Idempotent. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.dirty = true;
    this.kick();
    this.schedulePoll();
  }

  /** Stops timers and waits for an in-flight push or drift check (not aborted). Safe at any time, more than once. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of [this.debounceTimer, this.retryTimer, this.pollTimer]) if (t !== null) this.o.timers.clearTimeout(t);
    this.debounceTimer = this.retryTimer = this.pollTimer = null;
    while (this.inflight || this.polling) await (this.inflight ?? this.polling);
  }

  /** The desired state changed. Cheap; before start() it only marks the state dirty. After a quiet spell it pushes at once. */
  trigger(): void {
    if (this.stopped) return;
    this.dirty = true;
    if (!this.started) return;
    const now = this.o.now();
    const quiet = now - this.lastTriggerAt >= this.o.debounceMs;
    this.lastTriggerAt = now;
    // Leading edge: a change after a quiet spell, with nothing in flight or pending, goes out at
    // once, so an isolated edit is live in one load time; what follows within the window coalesces.
    if (quiet && !this.inflight && this.debounceTimer === null && this.retryTimer === null) return this.kick();
    this.burstStart ??= now;
    this.debounceDue = Math.min(now + this.o.debounceMs, this.burstStart + this.o.maxWaitMs);
    if (this.debounceTimer === null) this.armDebounce(this.debounceDue - now);
  }

  /**
   * Load Caddy once more even if the config is unchanged (reason `close_sessions`): Caddy 2.6.2
   * closes hijacked connections (websockets) only when a load cleans up the old handlers. Coalesced
   * like trigger(); any load (a change in the same burst) serves the purpose.
   */
  closeSessions(): void {
    if (this.stopped) return;
    this.forceLoad = true;
    this.trigger();
  }

  /** When Caddy last accepted a load of ours (this reconciler's clock), or null. */
  lastLoadAt(): number | null {
    return this.lastAppliedAt;
  }

  /** Pushes the latest state now; resolves once it is applied, skipped as unchanged, or failed. No-op after stop(). */
  async flush(): Promise<void> {
    await this.settled();
    if (this.stopped) return;
    this.dirty = true;
    this.kick();
    await this.settled();
  }

  /** Resolves once no push is in flight (kick() may start one: TypeScript cannot see that through a call). */
  private async settled(): Promise<void> {
    while (this.inflight) await this.inflight;
  }

  state(): ReconcilerState {
    return {
      caddyUp: this.up,
      lastHash: this.lastHash,
      lastAppliedAt: this.lastAppliedAt,
      lastError: this.lastError,
      applies: this.applies,
      loads: { ...this.loadsBy },
      failures: this.failures,
      quarantined: [...this.quarantine.keys()].sort(),
      inSync: this.up && !this.drift && !this.dirty && !this.inflight && this.lastHash !== null && this.lastHash === this.targetHash,
    };
  }

  /** What Caddy is believed to run (desired minus quarantined, as last applied), or null before the first apply. */
  applied(): DesiredProxy | null {
    return this.appliedDoc;
  }

  private armDebounce(ms: number): void {
    this.debounceTimer = this.o.timers.setTimeout(() => {
      this.debounceTimer = null;
      const left = this.debounceDue - this.o.now();
      if (left > 0) return this.armDebounce(left);
      this.burstStart = null;
      this.kick();
    }, Math.max(0, ms));
  }

  /** Starts a push unless one is in flight (its end re-checks `dirty`). */
  private kick(): void {
    if (this.stopped || this.inflight || !this.dirty) return;
    if (this.debounceTimer !== null) {
      this.o.timers.clearTimeout(this.debounceTimer);
      this.debounceTimer = null;
      this.burstStart = null;
    }
    this.inflight = this.cycle().finally(() => {
      this.inflight = null;
      // Triggers that arrived during the push: one more push, once their debounce has run out.
      if (this.dirty && this.debounceTimer === null && this.retryTimer === null) this.kick();
    });
  }

  private async cycle(): Promise<void> {
    this.dirty = false;
    try {
      await this.reconcile();
    } catch (err) {
      this.failures++;
      this.lastError = (err as Error).message;
      this.o.log.error('reconcile failed', { error: this.lastError });
    }
  }

  private async reconcile(): Promise<void> {
    const desired = this.o.desired();
    const hashes = new Map(desired.routes.map((r) => [r.id, routeHash(r)]));
    for (const [id, q] of this.quarantine) {
      if (hashes.get(id) === q.hash) continue;
      this.quarantine.delete(id);
      if (hashes.has(id)) this.o.log.info('route changed, retrying it', { route: id });
    }
    for (let round = 1; ; round++) {
      const doc: DesiredProxy = {
        settings: desired.settings,
        routes: desired.routes.filter((r) => !this.quarantine.has(r.id)),
        // Stored certificates (keys included) go to render() only; appliedDoc keeps settings and routes.
        ...(desired.certificates?.length ? { certificates: desired.certificates } : {}),
      };
      const rendered = this.o.render(doc);
      this.targetHash = rendered.hash;
      this.skipped = new Map(skippedBy(rendered).map((x) => [x.id, x.reason]));
      if (rendered.hash === this.lastHash && !this.drift && !this.forceLoad) return this.report(desired, hashes);
      if (this.stopped) return;
      // After a restart of ours or an outage, Caddy may still run exactly this document: adopt it
      // instead of reloading (a reload closes websockets and drops a few requests).
      if (this.drift && !this.forceLoad && (await this.runs(rendered.config, rendered.hash).catch(() => false))) {
        this.o.log.info('caddy already runs this config', { routes: doc.routes.length, hash: rendered.hash.slice(0, 12) });
        this.recordApplied(doc, rendered, hashes);
        return this.report(desired, hashes);
      }
      for (const w of rendered.warnings) this.o.log.warn('render warning', { warning: w });
      const reason = this.lastHash === null ? 'startup' : this.drift ? 'restore' : rendered.hash === this.lastHash && this.forceLoad ? 'close_sessions' : 'change';
      const t0 = this.o.now();
      const outcome = await this.o.caddy.load(rendered.config, rendered.json, reason === 'close_sessions').then(
        () => null,
        (err: unknown) => err,
      );
      const ms = this.o.now() - t0;
      const result = outcome === null ? 'ok' : outcome instanceof CaddyRejected ? 'rejected' : 'unavailable';
      caddyApplies.inc({ result });
      caddyApplyDuration.observe(ms / 1000);
      const line = { result, durationMs: ms, routes: doc.routes.length, hash: rendered.hash.slice(0, 12) };

      if (outcome === null) {
        this.o.log.info('caddy apply', { ...line, quarantined: this.quarantine.size });
        this.applies++;
        caddyLoads.inc({ reason });
        this.loadsBy[reason]++;
        this.forceLoad = false;
        this.lastAppliedAt = this.o.now();
        this.recordApplied(doc, rendered, hashes);
        return this.report(desired, hashes);
      }

      this.failures++;
      if (!(outcome instanceof CaddyRejected)) {
        // CaddyUnavailable, or anything unexpected from the client: keep the state, retry later.
        this.lastError = (outcome as Error).message;
        this.o.log.warn('caddy apply', { ...line, error: this.lastError });
        this.setUp(false);
        this.drift = true;
        this.dirty = true;
        return this.scheduleRetry();
      }

      this.setUp(true);
      this.o.log.warn('caddy apply', { ...line, error: outcome.caddyError });
      const t1 = this.o.now();
      const found: IsolateResult = round > MAX_REJECT_ROUNDS ? { bad: new Map() } : await isolate({
        render: this.o.render,
        validate: this.o.validate,
        settings: desired.settings,
        routes: doc.routes,
        config: rendered.config,
        error: outcome.caddyError,
        knownGood: new Set(doc.routes.filter((r) => this.appliedRoutes.get(r.id) === hashes.get(r.id)).map((r) => r.id)),
        deadline: t1 + ISOLATE_BUDGET_MS,
        now: this.o.now,
        cancelled: () => this.stopped,
      });
      if (found.validatorError) this.o.log.warn('validator unavailable; position parsing only', { error: found.validatorError });
      if (!found.bad.size) {
        // Not attributable to a route (or budget spent): the old config keeps running.
        this.lastError = caddyMessage(outcome.caddyError);
        this.report(desired, hashes, this.lastError);
        this.dirty = true;
        return this.scheduleRetry();
      }
      for (const [id, error] of found.bad) {
        this.quarantine.set(id, { hash: hashes.get(id)!, error });
        this.o.log.warn('route quarantined', { route: id, error });
      }
      this.o.log.info('isolation done', { quarantined: [...found.bad.keys()], ms: this.o.now() - t1 });
    }
  }

  private recordApplied(doc: DesiredProxy, rendered: Rendered, hashes: Map<string, string>): void {
    this.lastHash = rendered.hash;
    this.lastError = null;
    const running = doc.routes.filter((r) => !this.skipped.has(r.id));
    this.appliedDoc = { settings: doc.settings, routes: running };
    this.appliedConfig = rendered.config;
    this.appliedRoutes = new Map(running.map((r) => [r.id, hashes.get(r.id)!]));
    this.markerPath = findMarkerPath(rendered.config, this.o.markerId(rendered.hash));
    this.generation++;
    this.drift = false;
    this.setUp(true);
    this.retryDelay = RETRY_MIN_MS;
    this.clearRetry();
  }

  /**
   * Does Caddy run this document? Compares the marker `@id` (one small GET); if the render
   * carries no marker, the whole running config. Throws CaddyUnavailable.
   */
  private async runs(config: Record<string, unknown>, hash: string, markerPath = findMarkerPath(config, this.o.markerId(hash))): Promise<boolean> {
    if (markerPath !== null) return (await this.o.caddy.getMarker(markerPath)) === this.o.markerId(hash);
    return canonicalJson(await this.o.caddy.config()) === canonicalJson(config);
  }

  /**
   * Calls onStatus when any desired route's status changed, or a route changed and kept its
   * status (the listener ties a status to the route it was reported for); routes not yet applied
   * are left out.
   */
  private report(desired: DesiredProxy, hashes: Map<string, string>, globalError?: string): void {
    const statuses = new Map<string, AppliedStatus>();
    for (const r of desired.routes) {
      const q = this.quarantine.get(r.id);
      const skip = this.skipped.get(r.id);
      if (q) statuses.set(r.id, { status: 'error', error: q.error });
      else if (skip !== undefined) statuses.set(r.id, { status: 'error', error: skip });
      else if (this.appliedRoutes.get(r.id) === hashes.get(r.id)) statuses.set(r.id, { status: 'active', error: null });
      else if (globalError !== undefined) statuses.set(r.id, { status: 'error', error: globalError });
    }
    const counts = { active: 0, error: 0 };
    for (const s of statuses.values()) counts[s.status]++;
    proxyRoutes.set({ status: 'active' }, counts.active);
    proxyRoutes.set({ status: 'error' }, counts.error);
    // Whether Caddy runs the on-demand HTTPS part is reported too: plain TLS names become active with it (pipeline.ts).
    const key = canonicalJson([...[...statuses].map(([id, st]) => [id, st, hashes.get(id) ?? null]), this.appliedDoc?.settings.dynamic?.onDemand !== undefined]);
    if (key === this.lastReported) return;
    this.lastReported = key;
    this.o.onStatus(statuses);
  }

  private setUp(up: boolean): void {
    if (up !== this.up) this.o.log[up ? 'info' : 'warn'](up ? 'caddy reachable' : 'caddy unreachable');
    this.up = up;
    caddyUpGauge.set(up ? 1 : 0);
  }

  private scheduleRetry(): void {
    if (this.stopped || this.retryTimer !== null) return;
    const delay = this.retryDelay;
    this.retryDelay = Math.min(this.retryDelay * 2, RETRY_MAX_MS);
    this.retryTimer = this.o.timers.setTimeout(() => {
      this.retryTimer = null;
      this.dirty = true;
      this.kick();
    }, delay);
  }

  private clearRetry(): void {
    if (this.retryTimer !== null) this.o.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private schedulePoll(): void {
    if (this.stopped) return;
    this.pollTimer = this.o.timers.setTimeout(() => {
      this.pollTimer = null;
      this.polling = this.poll().finally(() => {
        this.polling = null;
        this.schedulePoll();
      });
    }, this.o.driftPollMs);
  }

  /** One drift check, then tells onPoll what it found. */
  private async poll(): Promise<void> {
    const outcome = await this.check();
    this.o.onPoll?.(outcome);
  }

  /**
   * Drift check: does Caddy still run lastHash? Reads Caddy's revision (unlogged), and the
   * marker (one logged admin request) only when the revision moved since the marker last
   * matched. Also the probe that notices Caddy coming back after an outage. Re-applies at once
   * on drift.
   */
  private async check(): Promise<PollOutcome> {
    if (this.stopped || this.inflight) return 'skipped';
    const gen = this.generation;
    const wasUp = this.up;
    let running: boolean;
    let revision: string | null;
    try {
      // Read before the marker: a change counted in this revision is already in the config the marker read sees.
      revision = await this.o.caddy.revision();
      if (revision !== null && !this.drift && this.verified?.generation === gen && this.verified.revision === revision) return 'unchanged';
      // Nothing applied yet: the revision read was the probe (it throws CaddyUnavailable when Caddy is down).
      running = this.lastHash !== null && this.appliedConfig !== null && (await this.runs(this.appliedConfig, this.lastHash, this.markerPath));
    } catch (err) {
      if (!(err instanceof CaddyUnavailable)) {
        this.o.log.warn('drift check failed', { error: (err as Error).message });
        return 'failed';
      }
      this.setUp(false);
      this.drift = true;
      this.dirty = true;
      this.scheduleRetry();
      return 'down';
    }
    if (gen !== this.generation || this.inflight || this.stopped) return 'skipped';
    this.setUp(true);
    if (running) {
      this.drift = false;
      this.verified = revision === null ? null : { revision, generation: gen };
      return 'verified';
    }
    // Nothing applied yet: only a Caddy that just came back is worth an immediate push.
    if (this.lastHash === null && wasUp) return 'idle';
    if (this.lastHash !== null && !this.drift) this.o.log.warn('caddy config drifted; re-applying', { expected: this.o.markerId(this.lastHash) });
    this.drift = true;
    this.dirty = true;
    this.clearRetry();
    this.kick();
    return 'drift';
  }
}
