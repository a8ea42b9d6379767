// Desired proxy state read from the stores, plus each route's last reported status.
// The pipeline (pipeline.ts) tells it of every committed change; it never subscribes itself.
import { isIP } from 'node:net';
import { routeOwnProblem } from '../model/endpoints.js';
import { publicAuth, type PublicAuth } from '../model/route-auth.js';
import type { AppliedStatus, Route, RouteMode, RouteStatus, StoredRoute } from '../model/route.js';
import type { RecordChange, StoredRecord } from '../model/record.js';
import type { RecordStore } from '../store/records.js';
import type { RouteStore } from '../store/routes.js';
import { buildDesired, recordRouteId, splitRoutes, type BuiltRoute, type DesiredBuild, type Resolver } from './desired.js';
import { endpointsOf } from './guard.js';
import type { CertState } from './certs.js';
import type { DesiredProxy, DesiredRoute, OnDemandSettings, ProxySettings } from './types.js';

/** Desired routes by how they are served: `explicit` in Caddy's config, `dynamic` through DNS. */
export interface SplitRoutes {
  explicit: DesiredRoute[];
  dynamic: DesiredRoute[];
}



/** A route's JSON, computed once per route object (routes are immutable; builds reuse unchanged ones). */
const texts = new WeakMap<DesiredRoute, string>();
function textOf(route: DesiredRoute): string {
  let text = texts.get(route);
  if (text === undefined) texts.set(route, (text = JSON.stringify(route)));
  return text;
}

/** Dials `host:port`; whether each host is an IP literal (then its dials never change with the records). */
function literal(upstreams: readonly string[]): boolean {
  return upstreams.every((u) => isIP(u.slice(0, u.lastIndexOf(':')).replace(/^\[(.*)\]$/, '$1')) !== 0);
}

/** A stored route as the API shows it: its auth without secrets (never a hash or token). */
function shown<T extends StoredRoute>({ auth, ...r }: T): Omit<T, 'auth'> & { auth?: PublicAuth } {
  return { ...r, ...(auth ? { auth: publicAuth(auth) } : {}) };
}

const byId = (a: DesiredRoute, b: DesiredRoute) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** Plain names whose DNS backends changed since the pipeline last asked (drainDynamic). */
export type DynamicDelta = { full: true; routes: DesiredRoute[] } | { full: false; set: DesiredRoute[]; removed: DesiredRoute[] };

/**
 * Work counters: whole-table passes (`full*`, `materialized`) happen at start-up and on explicit
 * changes (which reload Caddy anyway); a record change costs `evaluated` per-name builds only.
 * Tests assert on them so an O(records) pass per write cannot come back unnoticed.
 */
export interface ProxyCounts {
  /** buildDesired over every explicit (API) route. */
  fullRouteBuilds: number;
  /** splitRoutes over every desired route. */
  fullSplits: number;
  /** Sorted lists of every desired route made (listings, the Caddyfile export, TLS hosts). */
  materialized: number;
  /** Routes built one by one (a changed record name, or a route whose upstream names resolve through records). */
  evaluated: number;
}

export class ProxyState {
  /** Route id → status and the exact route it was reported for (a changed route is pending again). */
  private readonly reported = new Map<string, AppliedStatus & { route: string }>();
  /** Proxied record sets by `name type`, kept current from the store's change events (no re-read per push). */
  private proxied: Map<string, StoredRecord>;
  /** Record names whose proxied sets changed since the last build. */
  private readonly dirty = new Set<string>();
  /** Record names whose routes have upstream names (resolved through the records): rebuilt after every record change. */
  private readonly nameBound = new Set<string>();
  /** Record-derived routes and build errors, by route id, as of the last build. */
  private readonly recordRoutes = new Map<string, DesiredRoute>();
  private readonly recordErrors = new Map<string, string>();
  /** Explicit (API) routes built, by id; `stale` after a route change (rebuilt whole: it reloads Caddy anyway). */
  private api: { routes: Map<string, DesiredRoute>; errors: Map<string, string>; nameBound: StoredRoute[]; stale: boolean } = { routes: new Map(), errors: new Map(), nameBound: [], stale: true };
  private recordsMoved = false;
  /** The last build; any record or route change drops it (names in upstreams resolve through records). */
  private built: DesiredBuild | null = null;
  /** Route ids whose route (or absence) changed in builds the split has not seen yet. */
  private readonly changedIds = new Set<string>();
  /** Source record/route → the route built from it, so unchanged routes keep their identity (buildDesired). */
  private readonly memo = new WeakMap<object, BuiltRoute>();
  /** The split kept up to date per changed route; null: split everything at the next look. */
  private splitState: {
    explicit: Map<string, DesiredRoute>;
    dynamic: Map<string, DesiredRoute>;
    /** Host (lower-case) → routes that are not plain candidates serving it: they can claim a plain name. */
    claimers: Map<string, DesiredRoute[]>;
    list: DesiredRoute[];
    view: SplitRoutes;
    build: DesiredBuild;
  } | null = null;
  /** Dynamic routes changed since drainDynamic() (null: every one, after a whole split). */
  private dynamicDelta: { set: Map<string, DesiredRoute>; removed: Map<string, DesiredRoute> } | null = null;
  private current: ProxySettings;
  /** `current` without the on-demand part: what Caddy runs until the first TLS name (no HTTPS listener bound for nothing). */
  private withoutOnDemand: ProxySettings;
  /** A TLS name has been served since start: the HTTPS server and on-demand policy stay from then on (removing the last TLS name costs no load). */
  private tlsSeen = false;
  /** Certificate state per TLS host Caddy serves (certs.ts CertWatch): a failed one puts its route in error. */
  private certs: ReadonlyMap<string, CertState> = new Map();
  readonly counts: ProxyCounts = { fullRouteBuilds: 0, fullSplits: 0, materialized: 0, evaluated: 0 };

  constructor(
    private readonly records: RecordStore,
    private readonly routes: RouteStore,
    /** Upstream names in our zones → addresses (the DNS index); the API's upstream checks use it too. */
    readonly resolve: Resolver,
    settings: ProxySettings,
  ) {
    this.current = this.withoutOnDemand = settings;
    this.proxied = new Map(records.list({ proxied: true }).map((r) => [`${r.name} ${r.type}`, r]));
    for (const r of this.proxied.values()) this.dirty.add(r.name);
  }

  get settings(): ProxySettings {
    return this.current;
  }

  /**
   * Serve plain names through DNS from now on: Caddy asks `resolver` (`udp/<ip>:<port>`); with
   * `onDemand`, plain names of its issuer's tls mode too (certificates on demand). Before the first push.
   */
  useResolver(resolver: string, onDemand?: OnDemandSettings): void {
    this.current = { ...this.current, dynamic: { resolver, ...(onDemand ? { onDemand } : {}) } };
    this.withoutOnDemand = onDemand ? { ...this.current, dynamic: { resolver } } : this.current;
    this.splitState = null;
  }

  /**
   * Caddy sends its access log to `address` (`tcp/127.0.0.1:<port>`, per-host stats, access-log.ts)
   * from the next push on. Keeps the on-demand settings pair as useResolver left it.
   */
  useAccessLog(address: string): void {
    const same = this.current === this.withoutOnDemand;
    this.current = { ...this.current, accessLog: address };
    this.withoutOnDemand = same ? this.current : { ...this.withoutOnDemand, accessLog: address };
  }

  /**
   * Routes another part of the controller generates (static answers: a mail domain's MTA-STS
   * policy, src/mail/domains/mta-sts.ts), added to every build. Read again whenever records change: the
   * source must change only with a record (the policy's id is in the `_mta-sts` TXT record), and
   * return the same object for an unchanged route (the reconciler compares by identity).
   */
  useStatics(source: () => readonly DesiredRoute[]): void {
    this.statics = source;
    this.built = null;
    this.staticsStale = true;
  }

  private statics: (() => readonly DesiredRoute[]) | null = null;
  /** The static routes as of the last build (read again after a record change), and ids refused. */
  private staticRoutes = new Map<string, DesiredRoute>();
  private staticErrors = new Map<string, string>();
  private staticsStale = false;

  /** The static routes, each beside the routes whose ids `taken` reports: an id already taken is left out, as an error. */
  private placeStatics(taken: (id: string) => boolean): { routes: Map<string, DesiredRoute>; errors: Map<string, string> } {
    const routes = new Map<string, DesiredRoute>();
    const errors = new Map<string, string>();
    for (const r of this.statics?.() ?? []) {
      if (taken(r.id)) errors.set(r.id, `route id ${r.id} is taken`);
      else routes.set(r.id, r);
    }
    return { routes, errors };
  }

  /** `b` with the static routes added (a whole build: dry runs, `fresh`). */
  private withStatics(b: DesiredBuild): DesiredBuild {
    const ids = new Set(b.routes.map((r) => r.id));
    const placed = this.placeStatics((id) => ids.has(id));
    if (!placed.routes.size && !placed.errors.size) return b;
    return { routes: [...b.routes, ...placed.routes.values()].sort(byId), errors: new Map([...b.errors, ...placed.errors]) };
  }

  /** A committed record change (the pipeline calls this after the DNS index has it). O(sets changed). */
  recordsChanged(change: RecordChange): void {
    this.built = null;
    this.recordsMoved = true;
    for (const r of change.removed) if (this.proxied.delete(`${r.name} ${r.type}`)) this.dirty.add(r.name);
    for (const r of change.upserted) {
      if (r.proxy?.enabled) {
        this.proxied.set(`${r.name} ${r.type}`, r);
        this.dirty.add(r.name);
      } else if (this.proxied.size && this.proxied.delete(`${r.name} ${r.type}`)) this.dirty.add(r.name); // a zone import's 150,000 sets: no key built for nothing
    }
  }

  /** A committed route change. */
  routesChanged(): void {
    this.api.stale = true;
    this.built = null;
  }

  /**
   * Desired routes. `fresh` reads the stores instead of the cache: dry runs need it, because
   * their writes sit in a transaction that is rolled back and never reaches the change events.
   * Otherwise only what changed is built again: the record names changed since the last build,
   * the routes whose upstream names resolve through records, and all explicit routes after a
   * route change. `routes` is sorted when first read (a listing), not per build.
   */
  build(fresh = false): DesiredBuild {
    if (fresh) return this.withStatics(buildDesired(this.records.list({ proxied: true }), this.routes.list(), this.resolve));
    if (this.built) return this.built;
    const set = (routes: Map<string, DesiredRoute>, errors: Map<string, string>, id: string, b: DesiredBuild) => {
      const before = routes.get(id);
      const route = b.routes.find((r) => r.id === id);
      const error = b.errors.get(id);
      if (route) routes.set(id, route);
      else routes.delete(id);
      if (error !== undefined) errors.set(id, error);
      else errors.delete(id);
      if (before !== route) this.changed(id, route);
    };
    if (this.api.stale) {
      const stored = this.routes.list();
      const b = buildDesired([], stored, this.resolve, this.memo);
      this.counts.fullRouteBuilds++;
      const old = this.api.routes;
      const routes = new Map(b.routes.map((r) => [r.id, r]));
      for (const id of new Set([...old.keys(), ...routes.keys()])) if (old.get(id) !== routes.get(id)) this.changed(id, routes.get(id));
      this.api = { routes, errors: b.errors, nameBound: stored.filter((r) => !literal(r.upstreams)), stale: false };
    } else if (this.recordsMoved && this.api.nameBound.length) {
      this.counts.evaluated += this.api.nameBound.length;
      const b = buildDesired([], this.api.nameBound, this.resolve, this.memo);
      for (const r of this.api.nameBound) set(this.api.routes, this.api.errors, r.id, b);
    }
    for (const name of this.recordsMoved ? this.nameBound : []) this.dirty.add(name);
    for (const name of this.dirty) {
      const sets = [this.proxied.get(`${name} A`), this.proxied.get(`${name} AAAA`)].filter((r): r is StoredRecord => r !== undefined);
      this.counts.evaluated++;
      set(this.recordRoutes, this.recordErrors, recordRouteId(name), buildDesired(sets, [], this.resolve, this.memo));
      if (sets.some((r) => !literal(r.proxy?.upstreams ?? []))) this.nameBound.add(name);
      else this.nameBound.delete(name);
    }
    this.dirty.clear();
    if (this.statics && (this.staticsStale || this.recordsMoved)) {
      const { routes: next, errors } = this.placeStatics((id) => this.recordRoutes.has(id) || this.api.routes.has(id));
      for (const id of new Set([...this.staticRoutes.keys(), ...next.keys()])) if (this.staticRoutes.get(id) !== next.get(id)) this.changed(id, next.get(id));
      this.staticRoutes = next;
      this.staticErrors = errors;
      this.staticsStale = false;
    }
    this.recordsMoved = false;
    const { recordRoutes, recordErrors, api, staticRoutes, staticErrors } = this;
    let sorted: DesiredRoute[] | null = null;
    let errors: Map<string, string> | null = null;
    const counts = this.counts;
    // Read right away by the callers (never kept across a change): the maps are the current ones.
    return (this.built = {
      get routes() {
        if (!sorted) {
          counts.materialized++;
          sorted = [...recordRoutes.values(), ...api.routes.values(), ...staticRoutes.values()].sort(byId);
        }
        return sorted;
      },
      get errors() {
        return (errors ??= new Map([...recordErrors, ...api.errors, ...staticErrors]));
      },
    });
  }

  /** A route id's route changed (or went away): the split and the statuses hear of it. */
  private changed(id: string, route: DesiredRoute | undefined): void {
    this.changedIds.add(id);
    if (!route) this.reported.delete(id);
  }

  /** The current route with this id, or undefined. */
  private routeOf(id: string): DesiredRoute | undefined {
    this.build();
    return this.recordRoutes.get(id) ?? this.api.routes.get(id) ?? this.staticRoutes.get(id);
  }

  private errorOf(id: string): string | undefined {
    this.build();
    return this.recordErrors.get(id) ?? this.api.errors.get(id) ?? this.staticErrors.get(id);
  }

  /** Desired routes were the proxied record sets `proxied` (a dry run computed on another connection). */
  buildWith(proxied: readonly StoredRecord[]): DesiredBuild {
    return this.withStatics(buildDesired(proxied, this.routes.list(), this.resolve));
  }

  /**
   * The current routes split by how they are served. Kept up to date per changed route: a plain
   * name's route is placed by splitRoutes() over it and the explicit routes that could claim its
   * host; a change to a route that is not a plain candidate (it changes what Caddy's config
   * carries, so a load follows anyway) splits everything again.
   */
  split(): SplitRoutes {
    return this.splitView();
  }

  private splitView(): SplitRoutes {
    const build = this.build();
    const st = this.splitState;
    if (st?.build === build) return st.view;
    const enabled = this.current.dynamic !== undefined;
    const own = endpointsOf(this.current);
    const ownProblem = (r: DesiredRoute) => routeOwnProblem(r, own);
    const candidate = (r: DesiredRoute) => this.splitBy([r], true).dynamic.length === 1;
    const incremental =
      st !== null &&
      enabled &&
      [...this.changedIds].every((id) => {
        const before = st.explicit.get(id) ?? st.dynamic.get(id);
        const after = this.routeOf(id);
        return (!before || candidate(before)) && (!after || candidate(after));
      });
    if (!incremental || !st) return this.splitAll(build, enabled, ownProblem);
    let explicitMoved = false;
    for (const id of this.changedIds) {
      const before = st.explicit.get(id) ?? st.dynamic.get(id);
      if (st.explicit.delete(id)) explicitMoved = true;
      if (st.dynamic.delete(id)) this.dynamicChanged(id, undefined, before);
      const route = this.routeOf(id);
      if (!route) continue;
      this.counts.evaluated++;
      const host = route.hosts[0]!.toLowerCase();
      const dot = host.indexOf('.');
      const claimers = [...(st.claimers.get(host) ?? []), ...(dot > 0 ? (st.claimers.get(`*${host.slice(dot)}`) ?? []) : [])];
      if (this.splitBy([...claimers, route], true, ownProblem).dynamic.includes(route)) {
        st.dynamic.set(id, route);
        this.dynamicChanged(id, route, before);
      } else {
        st.explicit.set(id, route);
        explicitMoved = true;
      }
    }
    this.changedIds.clear();
    if (explicitMoved) st.list = [...st.explicit.values()].sort(byId);
    const { dynamic } = st;
    let dynamicList: DesiredRoute[] | null = null;
    st.view = {
      explicit: st.list,
      get dynamic() {
        return (dynamicList ??= [...dynamic.values()].sort(byId));
      },
    };
    st.build = build;
    return st.view;
  }

  private splitAll(build: DesiredBuild, enabled: boolean, ownProblem: (r: DesiredRoute) => string | null): SplitRoutes {
    this.counts.fullSplits++;
    const routes = build.routes;
    const view = this.splitBy(routes, enabled, ownProblem);
    const claimers = new Map<string, DesiredRoute[]>();
    for (const r of routes)
      if (!(enabled && this.splitBy([r], true).dynamic.length === 1))
        for (const h of r.hosts) {
          const key = h.toLowerCase();
          claimers.set(key, [...(claimers.get(key) ?? []), r]);
        }
    const previous = this.splitState ? [...this.splitState.explicit.values()] : null;
    const list = previous && previous.length === view.explicit.length && view.explicit.every((r, i) => r === this.splitState?.list[i]) ? this.splitState!.list : view.explicit;
    this.splitState = { explicit: new Map(view.explicit.map((r) => [r.id, r])), dynamic: new Map(view.dynamic.map((r) => [r.id, r])), claimers, list, view: { explicit: list, dynamic: view.dynamic }, build };
    this.changedIds.clear();
    this.dynamicDelta = null;
    return this.splitState.view;
  }

  private dynamicChanged(id: string, route: DesiredRoute | undefined, before: DesiredRoute | undefined): void {
    if (!this.dynamicDelta) return; // everything is sent at the next drain anyway
    if (route) {
      this.dynamicDelta.set.set(id, route);
      this.dynamicDelta.removed.delete(id);
    } else {
      this.dynamicDelta.set.delete(id);
      if (before) this.dynamicDelta.removed.set(id, before);
    }
  }

  /** The plain names changed since the last call (everything the first time and after a whole split). */
  drainDynamic(): DynamicDelta {
    const view = this.splitView();
    const delta = this.dynamicDelta;
    this.dynamicDelta = { set: new Map(), removed: new Map() };
    if (!delta) return { full: true, routes: view.dynamic };
    return { full: false, set: [...delta.set.values()], removed: [...delta.removed.values()] };
  }

  /** Whether route `id` is served through DNS now (a plain name). */
  isDynamic(id: string): boolean {
    this.splitView();
    return this.splitState?.dynamic.has(id) ?? false;
  }

  /** splitRoutes() with the tls mode served on demand (plain TLS names of that mode are dynamic). */
  private splitBy(routes: readonly DesiredRoute[], enabled: boolean, ownProblem?: (r: DesiredRoute) => string | null): SplitRoutes {
    return splitRoutes(routes, enabled, ownProblem, this.current.dynamic?.onDemand?.issuer ?? null);
  }

  /** splitRoutes() with this state's settings (also for dry runs' builds). */
  classify(routes: readonly DesiredRoute[]): SplitRoutes {
    const own = endpointsOf(this.current);
    return splitRoutes(routes, this.current.dynamic !== undefined, (r) => routeOwnProblem(r, own), this.current.dynamic?.onDemand?.issuer ?? null);
  }

  /** Whether a plain host may have open websockets (the pipeline sets it; see ChangePipeline). */
  mayHaveSessions: (host: string) => boolean = () => false;

  /**
   * Whether going from `before` to `after` (desired routes, a dry run's) makes Caddy load, beyond
   * explicit routes changing: the first TLS name brings the on-demand HTTPS part, and a plain name
   * that may have websockets and stops being served as such is closed by a load.
   */
  extraReload(before: readonly DesiredRoute[], after: readonly DesiredRoute[]): boolean {
    if (!this.tlsSeen && this.current !== this.withoutOnDemand && after.some((r) => r.tls !== 'off')) return true;
    const now = new Map(this.classify(after).dynamic.map((r) => [r.hosts[0]!.toLowerCase(), r.tls]));
    return this.classify(before).dynamic.some((r) => {
      const host = r.hosts[0]!.toLowerCase();
      return now.get(host) !== r.tls && this.mayHaveSessions(host);
    });
  }

  /**
   * What the reconciler should make Caddy run now: the explicit routes (plain names go through
   * DNS), and the on-demand HTTPS part once any TLS name exists (then for good, see `tlsSeen`).
   */
  desired(): DesiredProxy {
    const split = this.split();
    return { settings: this.settingsFor(split), routes: split.explicit };
  }

  /** The settings Caddy should run with this split (the on-demand part once a TLS name exists). */
  settingsFor({ explicit, dynamic }: SplitRoutes): ProxySettings {
    if (!this.tlsSeen && this.current !== this.withoutOnDemand) this.tlsSeen = explicit.some((r) => r.tls !== 'off') || dynamic.some((r) => r.tls !== 'off');
    return this.tlsSeen ? this.current : this.withoutOnDemand;
  }

  /** Every desired route, plain ones included (the Caddyfile export writes them all). */
  desiredAll(): DesiredProxy {
    return { settings: this.current, routes: this.build().routes };
  }

  /**
   * Statuses for the routes named (the reconciler's after each apply, or plain names just
   * published). `all`: `statuses` covers every route, so ids not in it and gone are dropped.
   */
  report(statuses: ReadonlyMap<string, AppliedStatus>, all = false): void {
    for (const [id, s] of statuses) {
      const route = this.routeOf(id);
      if (route) this.reported.set(id, { ...s, route: textOf(route) });
    }
    if (all) for (const id of this.reported.keys()) if (!this.routeOf(id)) this.reported.delete(id);
  }

  /** Called when a TLS host's certificate state changed (certs.ts). */
  reportCerts(states: ReadonlyMap<string, CertState>): void {
    this.certs = states;
  }

  /** The TLS hosts of the routes Caddy runs now, each with its route's text (what CertWatch should probe). */
  tlsHosts(): Map<string, string> {
    const hosts = new Map<string, string>();
    for (const r of this.build().routes) if (r.tls !== 'off' && this.reported.get(r.id)?.status === 'active') for (const h of r.hosts) hosts.set(h, textOf(r));
    return hosts;
  }

  private statusOf(id: string, route: DesiredRoute | undefined, buildError: string | undefined): { status: RouteStatus; error: string | null; mode?: RouteMode } {
    const mode: RouteMode = route && this.isDynamic(id) ? 'dynamic' : 'explicit';
    return { ...this.statusOnly(id, route, buildError), mode };
  }

  /** The mode a route id is served in now. */
  modeOf(id: string): RouteMode {
    return this.isDynamic(id) ? 'dynamic' : 'explicit';
  }

  private statusOnly(id: string, route: DesiredRoute | undefined, buildError: string | undefined): { status: RouteStatus; error: string | null } {
    if (buildError) return { status: 'error', error: buildError };
    const r = this.reported.get(id);
    if (!r || !route || r.route !== textOf(route)) return { status: 'pending', error: null };
    if (r.status === 'active' && route.tls !== 'off')
      for (const h of route.hosts) {
        const cert = this.certs.get(h);
        if (cert?.state === 'failed') return { status: 'error', error: `certificate for ${h}: ${cert.reason}` };
      }
    return { status: r.status, error: r.error };
  }

  /** Every route (explicit and record-derived) as the API shows it, sorted by id. */
  views(): Route[] {
    this.build();
    const out: Route[] = [];
    const stored = this.routes.scan();
    for (const r of stored.routes) out.push({ ...shown(r), source: 'api', ...this.statusOf(r.id, this.routeOf(r.id), this.errorOf(r.id)) });
    // Rows that no longer parse are never built; they are shown so they can be replaced or removed.
    for (const { reason, ...r } of stored.broken) out.push({ ...shown(r), source: 'api', mode: 'explicit', status: 'error', error: reason });
    const seen = new Set(out.map((v) => v.id));
    for (const rec of this.proxied.values()) {
      if (rec.type !== 'A' && rec.type !== 'AAAA') continue;
      const id = recordRouteId(rec.name);
      if (seen.has(id)) continue;
      seen.add(id);
      out.push(this.recordView(rec, this.routeOf(id), this.errorOf(id)));
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** One route as views() shows it, or undefined; without building every other view (a write's reply). */
  view(id: string): Route | undefined {
    if (id.startsWith('record:')) {
      const name = `${id.slice('record:'.length)}.`;
      const rec = this.proxied.get(`${name} A`) ?? this.proxied.get(`${name} AAAA`);
      return rec ? this.recordView(rec, this.routeOf(id), this.errorOf(id)) : undefined;
    }
    const r = this.routes.get(id);
    // An API id whose row does not parse (or none): the full listing knows which.
    if (!r) return this.routes.has(id) ? this.views().find((v) => v.id === id) : undefined;
    if (!this.api.stale) return { ...shown(r), source: 'api', ...this.statusOf(r.id, this.routeOf(r.id), this.errorOf(r.id)) };
    // A route write's reply (the explicit routes are rebuilt after it, off the request's stack):
    // this route alone; a route that is not a plain candidate is explicit whatever the others are.
    const one = buildDesired([], [r], this.resolve, this.memo);
    const route = one.routes[0];
    if (route && this.current.dynamic !== undefined && this.splitBy([route], true).dynamic.length === 1) return { ...shown(r), source: 'api', ...this.statusOf(r.id, this.routeOf(r.id), this.errorOf(r.id)) };
    return { ...shown(r), source: 'api', ...this.statusOnly(r.id, route, one.errors.get(r.id)), mode: 'explicit' };
  }

  private recordView(rec: StoredRecord, route: DesiredRoute | undefined, error: string | undefined): Route {
    const id = recordRouteId(rec.name);
    return {
      id,
      source: 'record',
      hosts: [rec.name.replace(/\.$/, '')],
      path: null,
      upstreams: rec.proxy?.upstreams ?? [],
      tls: rec.proxy?.tls ?? 'off',
      health_path: null,
      ...(rec.proxy?.balancing ? { balancing: rec.proxy.balancing } : {}),
      ...(rec.proxy?.backends ? { backends: rec.proxy.backends } : {}),
      ...(rec.proxy?.health ? { health: rec.proxy.health } : {}),
      created_at: rec.created_at,
      updated_at: rec.updated_at,
      ...this.statusOf(id, route, error),
    };
  }
}
