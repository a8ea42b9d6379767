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
import { backendOf, type PlainBackend, type PlainUpstreams } from '../dns/upstreams.js';
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
  log?: Logger;
}

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
  /** The explicit routes last handed to the reconciler (compared by identity: unchanged routes keep theirs). */
  private lastExplicit: readonly DesiredRoute[] | null = null;
  private readonly waiters: { at: number; resolve: () => void }[] = [];
  /** Stage runs, how many of them triggered the reconciler, and how many published every plain name (tests and /metrics read them). */
  readonly counts = { runs: 0, triggers: 0, fullPublishes: 0 };

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
  }

  /** Runs stages 2 and 3 for what is stored now, and after every change from here on. */
  start(): void {
    if (this.started) return;
    this.started = true;
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
    if (this.o.reconciler?.applied() != null) for (const r of this.o.proxy.split().dynamic) all.set(r.id, ACTIVE);
    this.o.proxy.report(all, true);
    this.emit('status', all);
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
    const { explicit } = this.o.proxy.split();
    const delta = this.o.proxy.drainDynamic();
    // Stage 3: DNS first (plain names), then Caddy (explicit routes), only if those changed.
    const live = this.o.reconciler?.applied() != null;
    const dyn = new Map<string, AppliedStatus>();
    if (delta.full) {
      const table = new Map<string, PlainBackend[]>();
      for (const r of delta.routes) table.set(hostOf(r), r.upstreams.map(backendOf));
      this.o.plain.replace(table);
      this.counts.fullPublishes++;
      if (live) for (const r of delta.routes) dyn.set(r.id, ACTIVE);
    } else {
      const set = new Map<string, PlainBackend[]>();
      for (const r of delta.set) set.set(hostOf(r), r.upstreams.map(backendOf));
      this.o.plain.patch(set, delta.removed.map(hostOf).filter((h) => !set.has(h)));
      if (live) for (const r of delta.set) dyn.set(r.id, ACTIVE);
    }
    if (!sameList(explicit, this.lastExplicit)) {
      this.lastExplicit = explicit;
      this.counts.triggers++;
      this.o.reconciler?.trigger();
    }
    if (dyn.size) this.o.proxy.report(dyn);
    this.handled = Math.max(this.handled, upTo);
    for (let i = this.waiters.length - 1; i >= 0; i--)
      if (this.waiters[i]!.at <= this.handled) {
        this.waiters[i]!.resolve();
        this.waiters.splice(i, 1);
      }
    this.emit('settled', { explicit: explicit.length, dynamic: this.o.plain.size });
  }
}
