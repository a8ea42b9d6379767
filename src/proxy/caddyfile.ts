// Caddyfile export: the routes render() pushes, as a human-readable Caddyfile laid out by
// templates/Caddyfile.hbs. Pure apart from reading the template once. The output passes
// `caddy adapt` without warnings and serves what render() serves (same routes chosen by
// selectRoutes, same per-host order, same 404s); it is flat (one site block per set of hosts
// sharing routes), so it lacks render()'s host grouping for large tables.
import { isIP } from 'node:net';
import { authSummary } from './auth.js';
import { headersSummary } from './headers.js';
import { limitsSummary } from './limits.js';
import { watchedByRecovery } from './recovery.js';
import { DEFAULT_RECOVERY_INTERVAL } from '../model/route-health.js';
import { nameProblem, upstreamProblem } from '../model/name.js';
import { adminAddressProblem } from './admin-address.js';
import {
  compareRoutes,
  DEFAULT_HTTPS_PORT,
  FAIL_DURATION,
  HEALTH_INTERVAL,
  HEALTH_TIMEOUT,
  KEEPALIVE_CONNS_PER_HOST,
  KEEPALIVE_IDLE,
  KEEPALIVE_PROBE,
  NO_HOST_BODY,
  NO_PATH_BODY,
  pathPatterns,
  selectRoutes,
  TRY_DURATION,
} from './render.js';
import type { DesiredProxy, DesiredRoute, TlsMode } from './types.js';
import { lazyTemplate, type HelperDelegate } from '../templates.js';

// `../../templates` from src/proxy (tsx) and from dist/proxy (compiled) alike.
const TEMPLATE_URL = new URL('../../templates/Caddyfile.hbs', import.meta.url);

/** Thrown when a value could change the Caddyfile's structure; validated input never triggers it. */
export class CaddyfileExportError extends Error {}

const fail = (what: string, value: unknown, problem: string): never => {
  throw new CaddyfileExportError(`cannot export ${what} ${JSON.stringify(value) ?? String(value)}: ${problem}`);
};

// Anything that can end a token, open a block/placeholder/comment/quote or a heredoc in a
// Caddyfile: whitespace, control and non-ASCII characters, braces, quotes, backtick, `#`, `\`, `<`.
const UNSAFE = /[^\x21-\x7e]|[{}"'`#\\<>]/;

/** `value` as a string that cannot inject Caddyfile syntax, also matching `re`; throws otherwise. */
function token(what: string, value: unknown, re: RegExp = /^[A-Za-z0-9_.-]{1,100}$/): string {
  if (typeof value !== 'string') return fail(what, value, 'is not a string');
  if (value.length === 0 || UNSAFE.test(value)) return fail(what, value, 'contains whitespace, quotes, braces, "#" or other Caddyfile syntax');
  return re.test(value) ? value : fail(what, value, `does not match ${re}`);
}

// Every value in the template goes through one of these; each returns safe text or throws.
function helpers(): Record<string, HelperDelegate> {
  const host = (v: unknown): string => {
    const s = token('host', v, /^[a-z0-9_.*-]{1,253}$/);
    const problem = nameProblem(s, { wildcard: true }) ?? (s.endsWith('.') ? 'ends with a dot' : null);
    return problem ? fail('host', v, problem) : s;
  };
  const port = (v: unknown): string => (Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535 ? String(v) : fail('port', v, 'must be an integer 1-65535'));
  return {
    host,
    port,
    address: (v: unknown, tls: TlsMode) => (tls === 'off' ? `http://${host(v)}` : host(v)),
    listen: (v: unknown) => {
      const s = token('admin listen address', v, /^(?:unix\/\/[A-Za-z0-9._+@,=/-]{1,200}|(?:127(?:\.\d{1,3}){3}|localhost|\[::1\]):\d{1,5})$/);
      const problem = adminAddressProblem(s);
      return problem ? fail('admin listen address', v, problem) : s;
    },
    /** listen_ip for `default_bind`: an IP literal (IPv6 without brackets, as Caddy takes it there). */
    bind: (v: unknown) => {
      const s = token('listen address', v, /^[0-9A-Fa-f.:]{2,45}$/);
      return isIP(s) ? s : fail('listen address', v, 'is not an IP address');
    },
    dial: (v: unknown) => {
      const s = token('upstream', v, /^[A-Za-z0-9_.:[\]-]{1,300}$/);
      const problem = s.toLowerCase().startsWith('device:') ? 'a device upstream is written as its addresses' : upstreamProblem(s);
      return problem ? fail('upstream', v, problem) : s;
    },
    /** A route's path prefix as the matcher's arguments: `/app` → `/app /app/*`. */
    paths: (v: unknown) => pathPatterns(token('path', v, /^\/[A-Za-z0-9._~!$&()+,;=:@%/-]{0,1000}$/)).join(' '),
    uri: (v: unknown) => token('health path', v, /^\/[A-Za-z0-9._~!$&()+,;=:@%/?-]{0,1000}$/),
    comment: (v: unknown) => token('route id', v, /^[A-Za-z0-9_.:*@/-]{1,300}$/),
    token: (v: unknown) => token('token', v),
    /** acme_ca: an https URL (no Caddyfile syntax, no placeholder braces). */
    acmeDir: (v: unknown) => token('ACME directory URL', v, /^https:\/\/[A-Za-z0-9._~:/?[\]@!$&()*+,;=%-]{1,1000}$/),
    /** acme_ca_root: an absolute file path. */
    file: (v: unknown) => token('file path', v, /^\/[A-Za-z0-9._+@,=/-]{1,1000}$/),
    email: (v: unknown) => token('email address', v, /^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}$/),
    quoted: (v: unknown) => (typeof v === 'string' && /^[A-Za-z0-9 .,:;!?()_-]{0,200}$/.test(v) ? `"${v}"` : fail('text', v, 'may hold only letters, digits, spaces and .,:;!?()_-')),
    eq: (a: unknown, b: unknown) => a === b,
    note: (v: unknown) => (typeof v === 'string' ? v.replace(/[^\x20-\x7e]/g, '?') : fail('note', v, 'is not a string')),
  };
}

interface ProxyView {
  upstreams: string[];
  several: boolean;
  healthPath: string | null;
  /** Comment lines before the reverse_proxy: what the pushed JSON adds that is not exported (auth, without secrets). */
  notes: string[];
  /** The route has auth, which the export cannot carry without its secrets: it answers 403 instead (fails closed). */
  closed: boolean;
}
interface HandleView {
  /** Named matcher (`p1`) for a path route, null for the host's catch-all route. */
  matcher: string | null;
  path: string | null;
  proxy: ProxyView;
}
interface SiteView {
  routeIds: string[];
  hosts: string[];
  tls: TlsMode;
  /** The site has one route and it has no path: reverse_proxy straight in the site block. */
  direct: ProxyView | null;
  handles: HandleView[];
  /** No catch-all route: other paths answer 404, as render()'s no-path route does. */
  miss: boolean;
}
/** The acme_* settings as the `issuer acme` block's subdirectives (Caddy 2.6.2 acmeissuer.go UnmarshalCaddyfile). */
interface AcmeView {
  dir: string | null;
  trustedRoots: string[];
  email: string | null;
  disableHttp: boolean;
  disableTlsAlpn: boolean;
}
interface View {
  admin: string;
  acme: AcmeView | null;
  listenIp: string;
  httpPort: number;
  httpsPort: number;
  internalCa: boolean;
  secure: boolean;
  /** TLS hosts the HTTP port redirects itself (HTTPS port ≠ 443, as render() does); empty otherwise. */
  redirectHosts: string[];
  sites: SiteView[];
  keepalive: string;
  keepaliveProbe: string;
  keepaliveConns: number;
  tryDuration: string;
  failDuration: string;
  healthInterval: string;
  healthTimeout: string;
  noHost: string;
  noPath: string;
  closedBody: string;
  skipped: { id: string; reason: string }[];
}

const proxyView = (r: DesiredRoute): ProxyView => ({ upstreams: r.upstreams, several: r.upstreams.length > 1, healthPath: r.health_path, notes: routeNotes(r), closed: r.auth !== undefined });

/** What a route with auth answers in the export (its credentials are never exported, so it fails closed). */
export const AUTH_NOT_EXPORTED_BODY = 'forbidden: this route has auth, which the export does not carry';

/** A route's option groups the export does not write as directives, one line each (never a hash or token). */
function routeNotes(r: DesiredRoute): string[] {
  const auth = authSummary(r.auth);
  const headers = headersSummary(r.headers);
  const limits = limitsSummary(r.limits);
  return [
    ...(auth ? [`${auth}: enforced by the pushed JSON config; this export answers 403 instead`] : []),
    ...(headers ? [`${headers} (in the pushed JSON config, not exported)`] : []),
    ...(limits ? [`${limits} (in the pushed JSON config, not exported)`] : []),
    ...(r.balancing ? [`balancing ${JSON.stringify(r.balancing)} (in the pushed JSON config, not exported: the block below shows round robin)`] : []),
    ...(r.weights ? [`weights ${JSON.stringify(r.weights)} (in the pushed JSON config as repeated upstreams, not exported)`] : []),
    ...(r.health ? [`health ${JSON.stringify(r.health)} (in the pushed JSON config, not exported)${watchedByRecovery(r) ? `; a backend failing requests is taken out by the controller and probed back every ${r.health.recovery_interval ?? DEFAULT_RECOVERY_INTERVAL}` : ''}`] : []),
    ...(r.listen ? [`also served on port ${r.listen.port} (in the pushed JSON config, not exported)`] : []),
  ];
}

/** Hosts with the same ordered routes share a site block; sites ordered by first route id, then first host. */
function sites(routes: DesiredRoute[]): SiteView[] {
  const byHost = new Map<string, DesiredRoute[]>();
  for (const r of routes) for (const h of r.hosts) byHost.set(h, [...(byHost.get(h) ?? []), r]);
  const groups = new Map<string, { hosts: string[]; routes: DesiredRoute[] }>();
  for (const host of [...byHost.keys()].sort()) {
    const rs = (byHost.get(host) ?? []).sort(compareRoutes);
    const key = rs.map((r) => r.id).join('\n');
    const g = groups.get(key) ?? { hosts: [], routes: rs };
    g.hosts.push(host);
    groups.set(key, g);
  }
  const out = [...groups.values()].map(({ hosts, routes: rs }): SiteView => {
    const only = rs.length === 1 && rs[0]?.path === null ? rs[0] : undefined;
    return {
      routeIds: rs.map((r) => r.id).sort(),
      hosts,
      tls: rs[0]?.tls ?? 'off',
      direct: only ? proxyView(only) : null,
      handles: only ? [] : rs.map((r, i) => ({ matcher: r.path === null ? null : `p${i + 1}`, path: r.path, proxy: proxyView(r) })),
      miss: !rs.some((r) => r.path === null),
    };
  });
  const first = (s: SiteView) => `${s.routeIds[0] ?? ''}\n${s.hosts[0] ?? ''}`;
  return out.sort((a, b) => (first(a) < first(b) ? -1 : first(a) > first(b) ? 1 : 0));
}

const template = lazyTemplate<View>(TEMPLATE_URL, helpers);

/**
 * The desired routes as a Caddyfile (global options, one site block per set of hosts with the
 * same routes, catch-all 404 sites). Routes render() leaves out are left out here too, listed
 * in a comment. Throws CaddyfileExportError when a value could inject Caddyfile syntax.
 * Does not mutate `desired`.
 */
export function caddyfileExport(desired: DesiredProxy): string {
  const selected = selectRoutes(desired);
  // Static answers (a mail domain's MTA-STS policy) are in the pushed JSON only: listed as left out.
  const routes = selected.routes.filter((r) => !r.respond);
  const skipped = [...selected.skipped, ...selected.routes.filter((r) => r.respond).map((r) => ({ id: r.id, reason: 'a static response (served by the pushed JSON config, not exported)' }))];
  const { settings } = desired;
  const a = settings.acme;
  const acme: AcmeView = {
    dir: a?.ca ?? null,
    trustedRoots: [...(a?.trustedRoots ?? [])],
    email: a?.email ?? null,
    disableHttp: a?.challenges !== undefined && !a.challenges.includes('http-01'),
    disableTlsAlpn: a?.challenges !== undefined && !a.challenges.includes('tls-alpn-01'),
  };
  const hasAcme = acme.dir !== null || acme.trustedRoots.length > 0 || acme.email !== null || acme.disableHttp || acme.disableTlsAlpn;
  return template({
    admin: settings.admin,
    acme: hasAcme ? acme : null,
    listenIp: settings.listenIp,
    httpPort: settings.httpPort,
    httpsPort: settings.httpsPort,
    internalCa: routes.some((r) => r.tls === 'internal'),
    secure: routes.some((r) => r.tls !== 'off'),
    redirectHosts:
      settings.httpsPort === DEFAULT_HTTPS_PORT ? [] : [...new Set(routes.filter((r) => r.tls !== 'off').flatMap((r) => r.hosts))].sort(),
    sites: sites(routes),
    keepalive: KEEPALIVE_IDLE,
    keepaliveProbe: KEEPALIVE_PROBE,
    keepaliveConns: KEEPALIVE_CONNS_PER_HOST,
    tryDuration: TRY_DURATION,
    failDuration: FAIL_DURATION,
    healthInterval: HEALTH_INTERVAL,
    healthTimeout: HEALTH_TIMEOUT,
    noHost: NO_HOST_BODY,
    noPath: NO_PATH_BODY,
    closedBody: AUTH_NOT_EXPORTED_BODY,
    skipped,
  });
}
