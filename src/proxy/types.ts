// Shared shapes of the proxy module: what the controller wants Caddy to run, and the seams
// (renderer, Caddy admin client, validator) the reconciler is built from.

import type { OwnEndpoints } from '../model/endpoints.js';
import type { RouteShape } from '../model/route.js';
import type { AcmeIssuerSettings } from './acme.js';

export type { TlsMode } from '../model/route.js';

/** One reverse-proxy route as the renderer takes it (the shape lives in the model). */
export type DesiredRoute = RouteShape;

export interface ProxySettings {
  httpPort: number;
  httpsPort: number;
  /** Address Caddy's HTTP and HTTPS servers bind (`listen_ip`): never every interface unless it is `0.0.0.0` / `::`. */
  listenIp: string;
  /** Caddy admin listen address, `unix/<path>` or loopback `host:port`; rendered into every config we push. */
  admin: string;
  /**
   * This node's listeners and addresses no route may reach (ownEndpoints(config); the controller
   * always passes them). endpointsOf() adds the admin TCP port, httpPort, httpsPort and listenIp.
   */
  own?: OwnEndpoints;
  /**
   * Where Caddy asks our DNS server about plain names (`udp/<ip>:<port>`). Set: render adds the
   * static dynamic routes and plain names are served through DNS (no reload per change). Absent:
   * every route is rendered into the config.
   */
  dynamic?: { resolver: string; onDemand?: OnDemandSettings };
  /**
   * Client networks (CIDRs, checked by the config schema) Caddy serves (`tailnet_only`). Set: every
   * server's first route answers 403 to any other client address, before any host route. Absent: all.
   */
  allowClients?: readonly string[];
  /** The ACME issuer of `tls: acme` names (directory URL, trusted roots, email, challenges; acme.ts). Absent: Caddy's defaults (Let's Encrypt). */
  acme?: AcmeIssuerSettings;
  /**
   * Where Caddy sends its access log (`tcp/127.0.0.1:<port>`, the controller's listener,
   * access-log.ts). Set: every server logs every request there (per-host stats). Absent: no access log.
   */
  accessLog?: string;
  /** Extra ports another process holds (port → why): their routes are left out with the reason until it is gone (listen.ts). */
  blockedPorts?: ReadonlyMap<number, string>;
}

/**
 * Plain TLS names served without reloads (src/proxy/README.md, "Certificates on demand"): one
 * catch-all on-demand automation policy with `issuer`; Caddy asks `ask` (`GET ?domain=`) before
 * it gets a certificate for a name it has none for.
 */
export interface OnDemandSettings {
  /** The issuer of the catch-all policy: plain names with this tls mode are dynamic, the other mode stays explicit. */
  issuer: 'internal' | 'acme';
  /** The controller's ask endpoint, `http://127.0.0.1:<port>/ask` (loopback only). */
  ask: string;
  /** Caddy's own limit on certificates obtained on demand (tls.automation.on_demand.rate_limit). */
  rateLimit: { interval: string; burst: number };
}

export interface DesiredProxy {
  settings: ProxySettings;
  /** Sorted by id. */
  routes: DesiredRoute[];
  /** Certificates from the store (src/certs) Caddy loads and serves for their names instead of getting its own. */
  certificates?: readonly LoadedCertificate[];
}

/** A stored certificate as render() puts it into `tls.certificates.load_pem`. */
export interface LoadedCertificate {
  id: string;
  /** DNS names of the leaf (`*.zone` for a wildcard). */
  names: readonly string[];
  /** PEM chain, leaf first. */
  chain: string;
  key: string;
}

export interface Rendered {
  /** Caddy JSON config; keys sorted, so JSON.stringify is canonical. */
  config: Record<string, unknown>;
  /** `JSON.stringify(config)`, made once by the renderer so the push does not serialise again. */
  json?: string;
  /** sha256 hex of the canonical JSON; also carried in the config as the marker `@id`. */
  hash: string;
  warnings: string[];
  /** Routes left out of the config (e.g. a host+path another route with a smaller id already has), with why. */
  skipped?: { id: string; reason: string }[];
}

/** The `@id` prefix of every object we generate; objects without it are not ours to change. */
export const ID_PREFIX = 'dnsproxy-';

/** `host:port` / `[v6]:port` as Caddy dials it → the host (no brackets) and port a Node request takes. */
export function dialHostPort(dial: string): { host: string; port: number } {
  const i = dial.lastIndexOf(':');
  return { host: dial.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(dial.slice(i + 1)) };
}
