// Desired proxy state read from the stores, plus each route's last reported status.
import type { Route, RouteStatus } from '../model/route.js';
import type { StoredRecord } from '../model/record.js';
import type { RecordStore } from '../store/records.js';
import type { RouteStore, StoredRoute } from '../store/routes.js';
import type { CertState } from './certs.js';
import { buildDesired, recordRouteId, type BuiltRoute, type DesiredBuild, type Resolver } from './desired.js';
import type { DesiredProxy, DesiredRoute, ProxySettings } from './types.js';

/** Status the reconciler reports for a route it tried to apply. */
export interface AppliedStatus {
  status: 'active' | 'error';
  error: string | null;
}

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
  /** Certificate state per TLS host Caddy serves (certs.ts CertWatch): a failed one puts its route in error. */
  private certs: ReadonlyMap<string, CertState> = new Map();

  constructor(
    private readonly records: RecordStore,
    private readonly routes: RouteStore,
    /** Upstream names in our zones → addresses (the DNS index); the API's upstream checks use it too. */
    readonly resolve: Resolver,
    readonly settings: ProxySettings,
  ) {
    this.proxied = new Map(records.list({ proxied: true }).map((r) => [`${r.name} ${r.type}`, r]));
    records.onChange((change) => {
      this.built = null;
      for (const r of change.removed) this.proxied.delete(`${r.name} ${r.type}`);
      for (const r of change.upserted) {
        if (r.proxy?.enabled) this.proxied.set(`${r.name} ${r.type}`, r);
        else if (this.proxied.size) this.proxied.delete(`${r.name} ${r.type}`); // a zone import's 150,000 sets: no key built for nothing
      }
    });
    routes.onChange(() => {
      this.explicit = null;
      this.built = null;
    });
  }

  /**
   * Desired routes. `fresh` reads the stores instead of the cache: dry runs need it, because
   * their writes sit in a transaction that is rolled back and never reaches the change events.
   */
  build(fresh = false): DesiredBuild {
    if (fresh) return buildDesired(this.records.list({ proxied: true }), this.routes.list(), this.resolve);
    this.explicit ??= this.routes.list();
    return (this.built ??= buildDesired([...this.proxied.values()], this.explicit, this.resolve, this.memo));
  }

  /** Desired routes were the proxied record sets `proxied` (a dry run computed on another connection). */
  buildWith(proxied: readonly StoredRecord[]): DesiredBuild {
    return buildDesired(proxied, this.routes.list(), this.resolve);
  }

  /** What the reconciler should make Caddy run now. */
  desired(): DesiredProxy {
    return { settings: this.settings, routes: this.build().routes };
  }

  /** Called by the reconciler after each apply. */
  report(statuses: ReadonlyMap<string, AppliedStatus>): void {
    const current = new Map(this.build().routes.map((r) => [r.id, r]));
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

  private statusOf(id: string, route: DesiredRoute | undefined, buildError: string | undefined): { status: RouteStatus; error: string | null } {
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
    const { routes, errors } = this.build();
    const desired = new Map(routes.map((r) => [r.id, r]));
    const out: Route[] = [];
    const stored = this.routes.scan();
    for (const r of stored.routes) out.push({ ...r, source: 'api', ...this.statusOf(r.id, desired.get(r.id), errors.get(r.id)) });
    // Rows that no longer parse are never built; they are shown so they can be replaced or removed.
    for (const { reason, ...r } of stored.broken) out.push({ ...r, source: 'api', status: 'error', error: reason });
    const seen = new Set(out.map((v) => v.id));
    for (const rec of this.proxied.values()) {
      if (rec.type !== 'A' && rec.type !== 'AAAA') continue;
      const id = recordRouteId(rec.name);
      if (seen.has(id)) continue;
      seen.add(id);
      out.push({
        id,
        source: 'record',
        hosts: [rec.name.replace(/\.$/, '')],
        path: null,
        upstreams: rec.proxy?.upstreams ?? [],
        tls: rec.proxy?.tls ?? 'off',
        health_path: null,
        created_at: rec.created_at,
        updated_at: rec.updated_at,
        ...this.statusOf(id, desired.get(id), errors.get(id)),
      });
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }
}
