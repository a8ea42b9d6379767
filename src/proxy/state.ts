// Desired proxy state read from the stores, plus each route's last reported status.
// The pipeline (pipeline.ts) tells it of every committed change; it never subscribes itself.
import { routeOwnProblem } from '../model/endpoints.js';
import type { AppliedStatus, Route, RouteMode, RouteStatus, StoredRoute } from '../model/route.js';
import type { RecordChange, StoredRecord } from '../model/record.js';
import type { RecordStore } from '../store/records.js';
import type { RouteStore } from '../store/routes.js';
import { buildDesired, recordRouteId, splitRoutes, type BuiltRoute, type DesiredBuild, type Resolver } from './desired.js';
import { endpointsOf } from './guard.js';
import type { CertState } from './certs.js';
import type { DesiredProxy, DesiredRoute, ProxySettings } from './types.js';

/** Desired routes by how they are served: `explicit` in Caddy's config, `dynamic` through DNS. */
export interface SplitRoutes {
  explicit: DesiredRoute[];
  dynamic: DesiredRoute[];
}


const dynamicIdSets = new WeakMap<SplitRoutes, Set<string>>();
const idMaps = new WeakMap<DesiredBuild, Map<string, DesiredRoute>>();

/** A route's JSON, computed once per route object (routes are immutable; builds reuse unchanged ones). */
const texts = new WeakMap<DesiredRoute, string>();
function textOf(route: DesiredRoute): string {
  let text = texts.get(route);
  if (text === undefined) texts.set(route, (text = JSON.stringify(route)));
  return text;
}

export class ProxyState {
  /** Route id → status and the exact route it was reported for (a changed route is pending again). */
  private readonly reported = new Map<string, AppliedStatus & { route: string }>();
  /** Proxied record sets by `name type`, kept current from the store's change events (no re-read per push). */
  private proxied: Map<string, StoredRecord>;
  private explicit: StoredRoute[] | null = null;
  /** The last build; any record or route change drops it (names in upstreams resolve through records). */
  private built: DesiredBuild | null = null;
  /** Source record/route → the route built from it, so unchanged routes keep their identity (buildDesired). */
  private readonly memo = new WeakMap<object, BuiltRoute>();
  /** The last split, for the build it was made from. */
  private splitOf: { build: DesiredBuild; split: SplitRoutes } | null = null;
  private current: ProxySettings;
  /** Certificate state per TLS host Caddy serves (certs.ts CertWatch): a failed one puts its route in error. */
  private certs: ReadonlyMap<string, CertState> = new Map();

  constructor(
    private readonly records: RecordStore,
    private readonly routes: RouteStore,
    /** Upstream names in our zones → addresses (the DNS index); the API's upstream checks use it too. */
    readonly resolve: Resolver,
    settings: ProxySettings,
  ) {
    this.current = settings;
    this.proxied = new Map(records.list({ proxied: true }).map((r) => [`${r.name} ${r.type}`, r]));
  }

  get settings(): ProxySettings {
    return this.current;
  }

  /** Serve plain names through DNS from now on: Caddy asks `resolver` (`udp/<ip>:<port>`). Before the first push. */
  useResolver(resolver: string): void {
    this.current = { ...this.current, dynamic: { resolver } };
    this.splitOf = null;
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
  }

  private statics: (() => readonly DesiredRoute[]) | null = null;

  /** `b` with the static routes added (an id another route has already is left out, as an error). */
  private withStatics(b: DesiredBuild): DesiredBuild {
    const extra = this.statics?.() ?? [];
    if (!extra.length) return b;
    const ids = new Set(b.routes.map((r) => r.id));
    const errors = new Map(b.errors);
    const routes = [...b.routes];
    for (const r of extra) {
      if (ids.has(r.id)) errors.set(r.id, `route id ${r.id} is taken`);
      else routes.push(r);
    }
    return { routes: routes.sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0)), errors };
  }

  /** A committed record change (the pipeline calls this after the DNS index has it). */
  recordsChanged(change: RecordChange): void {
    this.built = null;
    for (const r of change.removed) this.proxied.delete(`${r.name} ${r.type}`);
    for (const r of change.upserted) {
      if (r.proxy?.enabled) this.proxied.set(`${r.name} ${r.type}`, r);
      else if (this.proxied.size) this.proxied.delete(`${r.name} ${r.type}`); // a zone import's 150,000 sets: no key built for nothing
    }
  }

  /** A committed route change. */
  routesChanged(): void {
    this.explicit = null;
    this.built = null;
  }

  /**
   * Desired routes. `fresh` reads the stores instead of the cache: dry runs need it, because
   * their writes sit in a transaction that is rolled back and never reaches the change events.
   */
  build(fresh = false): DesiredBuild {
    if (fresh) return this.withStatics(buildDesired(this.records.list({ proxied: true }), this.routes.list(), this.resolve));
    this.explicit ??= this.routes.list();
    return (this.built ??= this.withStatics(buildDesired([...this.proxied.values()], this.explicit, this.resolve, this.memo)));
  }

  /** Desired routes were the proxied record sets `proxied` (a dry run computed on another connection). */
  buildWith(proxied: readonly StoredRecord[]): DesiredBuild {
    return this.withStatics(buildDesired(proxied, this.routes.list(), this.resolve));
  }

  /** The current routes split by how they are served (cached per build). */
  split(): SplitRoutes {
    const build = this.build();
    if (this.splitOf?.build !== build) this.splitOf = { build, split: this.classify(build.routes) };
    return this.splitOf.split;
  }

  /** splitRoutes() with this state's settings (also for dry runs' builds). */
  classify(routes: readonly DesiredRoute[]): SplitRoutes {
    const own = endpointsOf(this.current);
    return splitRoutes(routes, this.current.dynamic !== undefined, (r) => routeOwnProblem(r, own));
  }

  /** What the reconciler should make Caddy run now: the explicit routes (plain names go through DNS). */
  desired(): DesiredProxy {
    return { settings: this.current, routes: this.split().explicit };
  }

  /** Every desired route, plain ones included (the Caddyfile export writes them all). */
  desiredAll(): DesiredProxy {
    return { settings: this.current, routes: this.build().routes };
  }

  /** Called by the reconciler after each apply. */
  report(statuses: ReadonlyMap<string, AppliedStatus>): void {
    const current = this.byId();
    for (const [id, s] of statuses) {
      const route = current.get(id);
      if (route) this.reported.set(id, { ...s, route: textOf(route) });
    }
    for (const id of this.reported.keys()) if (!current.has(id)) this.reported.delete(id);
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
    const mode: RouteMode = route && this.dynamicIds().has(id) ? 'dynamic' : 'explicit';
    return { ...this.statusOnly(id, route, buildError), mode };
  }

  private dynamicIds(): Set<string> {
    const split = this.split();
    let ids = dynamicIdSets.get(split);
    if (!ids) dynamicIdSets.set(split, (ids = new Set(split.dynamic.map((r) => r.id))));
    return ids;
  }

  /** The mode a route id is served in now. */
  modeOf(id: string): RouteMode {
    return this.dynamicIds().has(id) ? 'dynamic' : 'explicit';
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
    const { errors } = this.build();
    const desired = this.byId();
    const out: Route[] = [];
    const stored = this.routes.scan();
    for (const r of stored.routes) out.push({ ...r, source: 'api', ...this.statusOf(r.id, desired.get(r.id), errors.get(r.id)) });
    // Rows that no longer parse are never built; they are shown so they can be replaced or removed.
    for (const { reason, ...r } of stored.broken) out.push({ ...r, source: 'api', mode: 'explicit', status: 'error', error: reason });
    const seen = new Set(out.map((v) => v.id));
    for (const rec of this.proxied.values()) {
      if (rec.type !== 'A' && rec.type !== 'AAAA') continue;
      const id = recordRouteId(rec.name);
      if (seen.has(id)) continue;
      seen.add(id);
      out.push(this.recordView(rec, desired.get(id), errors.get(id)));
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** One route as views() shows it, or undefined; without building every other view (a write's reply). */
  view(id: string): Route | undefined {
    const { errors } = this.build();
    const desired = this.byId();
    if (id.startsWith('record:')) {
      const name = `${id.slice('record:'.length)}.`;
      const rec = this.proxied.get(`${name} A`) ?? this.proxied.get(`${name} AAAA`);
      return rec ? this.recordView(rec, desired.get(id), errors.get(id)) : undefined;
    }
    const r = this.routes.get(id);
    // An API id whose row does not parse (or none): the full listing knows which.
    if (!r) return this.routes.has(id) ? this.views().find((v) => v.id === id) : undefined;
    return { ...r, source: 'api', ...this.statusOf(r.id, desired.get(r.id), errors.get(r.id)) };
  }

  /** The current build's routes by id (cached per build). */
  private byId(): Map<string, DesiredRoute> {
    const build = this.build();
    let map = idMaps.get(build);
    if (!map) idMaps.set(build, (map = new Map(build.routes.map((r) => [r.id, r]))));
    return map;
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
      created_at: rec.created_at,
      updated_at: rec.updated_at,
      ...this.statusOf(id, route, error),
    };
  }
}
