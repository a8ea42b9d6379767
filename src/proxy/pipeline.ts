// The one path from a committed store change to what DNS and Caddy serve. It alone subscribes to
// the record and route stores, and runs the stages in this order, whatever order things were
// constructed or registered in:
//   1. zone index updated (synchronously, in the store's notification: the next DNS query sees it);
//   2. desired proxy state rebuilt — deferred off the writer's stack (an HTTP request's), once the
//      index has settled (a staged big change), so upstream names resolve through the new records;
//   3. plain names published to DNS (the table Caddy's dynamic route asks), then the reconciler
//      triggered only when the routes Caddy's config carries changed.
// Changes that arrive before stage 2 runs are handled in one pass. `settled()` resolves once every
// change so far went through stage 3; the `status` event carries each route status report.
import { EventEmitter } from 'node:events';
import { proxyPasses } from '../metrics.js';
import { backendOf, type PlainEntry, type PlainUpstreams } from '../dns/upstreams.js';
import type { ZoneIndex } from '../dns/zone.js';
import type { Logger } from '../log/index.js';
import type { AppliedStatus } from '../model/route.js';
import type { RecordChange } from '../model/record.js';
import type { RecordStore } from '../store/records.js';
import type { RouteStore } from '../store/routes.js';
import type { ProxyState } from './state.js';
import type { DesiredProxy, DesiredRoute } from './types.js';

/** What the pipeline needs of the reconciler (Reconciler implements it). */
export interface ReconcileStage {
  trigger(): void;
  /** One load even though the config is unchanged (reason `close_sessions`): the only way Caddy 2.6.2 closes open websockets. */
  closeSessions(): void;
  /** When Caddy last accepted a load of ours (the reconciler's clock), or null. */
  lastLoadAt(): number | null;
  /** What Caddy runs, or null before the first apply: plain names are active only once the dynamic route is in. */
  applied(): DesiredProxy | null;
}

export interface PipelineOptions {
  records: RecordStore;
  routes: RouteStore;
  index: ZoneIndex;
  proxy: ProxyState;
  /** The DNS table of plain names' backends. */
  plain: PlainUpstreams;
  /** Absent in tests that look at desired state only. */
  reconciler?: ReconcileStage;
  /** Runs after stage 1 for each record change (metrics, logging); must be cheap. */
  onRecords?: (change: RecordChange) => void;
  /** How stage 2 is deferred; default setImmediate (after the reply is written). */
  defer?: (fn: () => void) => void;
  /** Clock for upgrade times, the same as the reconciler's (default Date.now). */
  now?: () => number;
  log?: Logger;
}

/**
 * An upgrade question this long before a load may still be the one a session opened after it
 * used: Caddy 2.6.2 keeps SRV answers in a process-wide cache for the refresh (1 s) across loads,
 * and a load takes up to a few seconds at 5,000 routes.
 */
export const UPGRADE_MARGIN_MS = 5_000;

const sameList = (a: readonly DesiredRoute[], b: readonly DesiredRoute[] | null): boolean => a === b || (b !== null && a.length === b.length && a.every((r, i) => r === b[i]));
const hostOf = (r: DesiredRoute): string => r.hosts[0]!.toLowerCase();
const ACTIVE: AppliedStatus = { status: 'active', error: null };

export class ChangePipeline extends EventEmitter {
  private started = false;
  /** Changes seen (stage 1) and changes fully handled (stage 3). */
  private seen = 0;
  private handled = 0;
  private scheduled = false;
  private running: Promise<void> | null = null;
  /** The explicit routes last handed to the reconciler (compared by identity: unchanged routes keep theirs), and the settings with them. */
  private lastExplicit: readonly DesiredRoute[] | null = null;
  private lastSettings: object | null = null;
  private readonly waiters: { at: number; resolve: () => void }[] = [];
  /** Stage runs, how many of them triggered the reconciler, asked for a load to close sessions, and published every plain name (tests and /metrics read them). */
  readonly counts = { runs: 0, triggers: 0, closeSessions: 0, fullPublishes: 0 };
  /** Plain host → when Caddy last asked its upgrade question (a websocket was opened through it). */
  private readonly upgrades = new Map<string, number>();

  /** Subscribes to both stores: from here on every committed change reaches the index (stage 1). */
  constructor(private readonly o: PipelineOptions) {
    super();
    const { records, routes, index, proxy } = o;
    records.onChange((change) => {
      index.apply(change, (warnings) => warnings.length && this.o.log?.warn('records not served', { zone: change.zone, warnings: warnings.slice(0, 20) }));
      proxy.recordsChanged(change);
      this.o.onRecords?.(change);
      this.schedule();
      // A zone import's release waits until the index serves the change.
      return index.settled();
    });
    routes.onChange(() => {
      proxy.routesChanged();
      this.schedule();
    });
    o.plain.onUpgrade = (host) => void this.upgrades.set(host, (o.now ?? Date.now)());
    proxy.mayHaveSessions = (host) => this.mayHaveSessions(host);
  }

  /**
   * Whether `host` may have open websockets through Caddy: an upgrade question since shortly before
   * the last load (every load closes them all). Before any load of ours (a Caddy config adopted
   * at start, sessions opened before this process) nobody knows: yes.
   */
  private mayHaveSessions(host: string): boolean {
    const loaded = this.o.reconciler?.lastLoadAt() ?? null;
    if (loaded === null) return true;
    const at = this.upgrades.get(host);
    if (at === undefined) return false;
    if (at >= loaded - UPGRADE_MARGIN_MS) return true;
    this.upgrades.delete(host);
    return false;
  }

  /** Runs stages 2 and 3 for what is stored now, and after every change from here on. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.schedule();
  }

  /** Upstream names resolve differently now (tailnet devices moved): rebuild the desired routes and publish them. */
  resolversChanged(): void {
    this.o.proxy.routesChanged();
    this.schedule();
  }

  /** Resolves once every change seen so far has been published and handed to the reconciler. */
  settled(): Promise<void> {
    if (this.handled >= this.seen || !this.started) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ at: this.seen, resolve }));
  }

  /** The reconciler reported statuses (explicit routes): add the plain names' and pass them on. */
  reported(statuses: ReadonlyMap<string, AppliedStatus>): void {
    const all = new Map(statuses);
    const served = this.servedNow();
    if (served) for (const r of this.o.proxy.split().dynamic) if (served(r)) all.set(r.id, ACTIVE);
    this.o.proxy.report(all, true);
    this.emit('status', all);
  }

  /** Whether a plain route is served by what Caddy runs: a TLS name once Caddy runs the on-demand HTTPS part. */
  private servedNow(): ((r: DesiredRoute) => boolean) | null {
    const applied = this.o.reconciler?.applied();
    if (applied == null) return null;
    const secure = applied.settings.dynamic?.onDemand !== undefined;
    return (r) => r.tls === 'off' || secure;
  }

  private schedule(): void {
    this.seen++;
    if (this.scheduled || !this.started) return;
    this.scheduled = true;
    (this.o.defer ?? setImmediate)(() => {
      this.running = (this.running ?? Promise.resolve())
        .then(() => this.run())
        .catch((err: unknown) => void this.o.log?.error('change pipeline failed', { error: (err as Error).message }));
    });
  }

  private async run(): Promise<void> {
    // Stage 1 finished for every change up to `upTo` (a staged index apply settles later).
    let upTo: number;
    do {
      upTo = this.seen;
      await this.o.index.settled();
    } while (upTo !== this.seen);
    this.scheduled = false;
    this.counts.runs++;
    // Stage 2: desired state from the stores' cached view and the settled index (only what changed is rebuilt).
    const split = this.o.proxy.split();
    const { explicit } = split;
    // The settings Caddy should run change once: the on-demand HTTPS part comes with the first TLS name.
    const settings = this.o.proxy.settingsFor(split);
    const delta = this.o.proxy.drainDynamic();
    // Stage 3: DNS first (plain names), then Caddy (explicit routes), only if those changed.
    const served = this.servedNow();
    const dyn = new Map<string, AppliedStatus>();
    const entry = (r: DesiredRoute): PlainEntry => ({ backends: r.upstreams.map(backendOf), tls: r.tls });
    // A plain name that is gone (or now served on the other server) may leave websockets open:
    // only a load closes them (Caddy 2.6.2 streaming.go: hijacked connections close at the
    // handler's Cleanup). Names that never had one change DNS only.
    const stranded: string[] = [];
    const strands = (host: string, next: PlainEntry | undefined) => {
      const was = this.o.plain.get(host);
      if (was !== undefined && next?.tls !== was.tls && this.mayHaveSessions(host)) stranded.push(host);
    };
    if (delta.full) {
      const table = new Map<string, PlainEntry>();
      for (const r of delta.routes) table.set(hostOf(r), entry(r));
      for (const [host] of [...this.o.plain.entries()]) strands(host, table.get(host));
      this.o.plain.replace(table);
      this.counts.fullPublishes++;
      if (served) for (const r of delta.routes) if (served(r)) dyn.set(r.id, ACTIVE);
    } else {
      const set = new Map<string, PlainEntry>();
      for (const r of delta.set) set.set(hostOf(r), entry(r));
      const removed = delta.removed.map(hostOf).filter((h) => !set.has(h));
      for (const host of removed) strands(host, undefined);
      for (const [host, next] of set) strands(host, next);
      this.o.plain.patch(set, removed);
      if (served) for (const r of delta.set) if (served(r)) dyn.set(r.id, ACTIVE);
    }
    for (const host of [...this.upgrades.keys()]) if (this.o.plain.get(host) === undefined) this.upgrades.delete(host);
    let outcome: 'trigger' | 'close_sessions' | 'unchanged' = 'unchanged';
    if (!sameList(explicit, this.lastExplicit) || settings !== this.lastSettings) {
      this.lastExplicit = explicit;
      this.lastSettings = settings;
      this.counts.triggers++;
      outcome = 'trigger';
      this.o.reconciler?.trigger();
    } else if (stranded.length && this.o.reconciler) {
      this.counts.closeSessions++;
      outcome = 'close_sessions';
      this.o.log?.info('plain names with websockets removed: one load closes their sessions', { hosts: stranded.slice(0, 20), count: stranded.length });
      this.o.reconciler.closeSessions();
    }
    if (dyn.size) this.o.proxy.report(dyn);
    proxyPasses.inc({ outcome });
    this.handled = Math.max(this.handled, upTo);
    for (let i = this.waiters.length - 1; i >= 0; i--)
      if (this.waiters[i]!.at <= this.handled) {
        this.waiters[i]!.resolve();
        this.waiters.splice(i, 1);
      }
    this.emit('settled', { explicit: explicit.length, dynamic: this.o.plain.size });
  }
}
