// Our own control endpoints: the listeners of this node a proxied route must never reach (Caddy's
// admin API when it is on TCP, the API, DNS, Caddy's own ports, the mail relay), and the route
// hosts that always mean this host. One check for every edge (explicit routes, proxied records,
// /add-record, dry runs) and for render() as the last line of defence. Pure: the set of
// endpoints is an argument, built from config by ownEndpoints().
import { isIP } from 'node:net';
import { addressClass, isLocalhostName } from './address.js';

export interface OwnListener {
  port: number;
  /** What listens there, for the refusal: `Caddy admin API (caddy_admin)`. */
  what: string;
}

export interface OwnEndpoints {
  /**
   * Names and IP literals that reach this node besides loopback, unspecified addresses and
   * localhost names (always included): node_ip, listen_ip, this host's name.
   */
  hosts: readonly string[];
  /** TCP ports of our own listeners. */
  ports: readonly OwnListener[];
}

/** The settings ownEndpoints() reads: the config's own keys (src/config/schema.ts), plus this host's name. */
export interface OwnSettings {
  node_ip: string;
  listen_ip: string;
  caddy_admin: string;
  api_port: number;
  dns_port: number;
  http_port: number;
  https_port: number;
  smtp_port: number;
  submission_port: number;
  smtps_port?: number;
  /** os.hostname(): Debian maps it to 127.0.1.1 in /etc/hosts, which Caddy reads when dialling. */
  hostname?: string;
}

/** The TCP port of a Caddy admin address (`127.0.0.1:2019` → 2019), null for a unix socket (`unix/<path>`). */
export function adminTcpPort(admin: string): number | null {
  const m = /:(\d{1,5})$/.exec(admin);
  return admin.startsWith('unix/') || !m ? null : Number(m[1]);
}

/** Every listener and address of this node, from config. Port 0 (an ephemeral port, tests only) names nothing. */
export function ownEndpoints(c: OwnSettings): OwnEndpoints {
  const ports: OwnListener[] = [
    { port: adminTcpPort(c.caddy_admin) ?? 0, what: 'Caddy admin API (caddy_admin)' },
    { port: c.api_port, what: 'HTTP API (api_port)' },
    { port: c.dns_port, what: 'DNS server (dns_port)' },
    { port: c.http_port, what: 'Caddy HTTP port (http_port)' },
    { port: c.https_port, what: 'Caddy HTTPS port (https_port)' },
    { port: c.smtp_port, what: 'mail relay SMTP port (smtp_port)' },
    { port: c.submission_port, what: 'mail relay submission port (submission_port)' },
    { port: c.smtps_port ?? 0, what: 'mail relay implicit-TLS port (smtps_port)' },
  ];
  const hosts = [c.node_ip, c.listen_ip, c.hostname].filter((h): h is string => !!h).map((h) => h.toLowerCase());
  return { hosts: [...new Set(hosts)], ports: ports.filter((p) => p.port > 0) };
}

/** Two endpoint sets as one (render adds the ports it knows from its own settings). */
export function mergeEndpoints(a: OwnEndpoints, b: OwnEndpoints): OwnEndpoints {
  const ports = [...a.ports];
  for (const p of b.ports) if (!ports.some((q) => q.port === p.port)) ports.push(p);
  return { hosts: [...new Set([...a.hosts, ...b.hosts])], ports };
}

/** An IP literal in one spelling per address: dotted quad for IPv4 and IPv4-mapped IPv6, IPv6 zero runs normalised (WHATWG URL host parser). */
function canonicalIp(ip: string): string {
  if (isIP(ip) === 4) return ip;
  const v6 = new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  // The parser writes ::ffff:a.b.c.d as ::ffff:xxxx:yyyy.
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(v6);
  if (!mapped) return v6;
  const [hi, lo] = [parseInt(mapped[1]!, 16), parseInt(mapped[2]!, 16)];
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/** own.hosts split once per endpoint set: render checks every upstream of every route against it. */
const hostSets = new WeakMap<OwnEndpoints, { ips: Set<string>; names: Set<string> }>();
function hostSet(own: OwnEndpoints): { ips: Set<string>; names: Set<string> } {
  let known = hostSets.get(own);
  if (!known) {
    known = { ips: new Set(own.hosts.filter((h) => isIP(h)).map(canonicalIp)), names: new Set(own.hosts.filter((h) => !isIP(h))) };
    hostSets.set(own, known);
  }
  return known;
}

// The last label all digits or 0x-hex: not a host name (RFC 1123 §2.1 keeps TLDs alphabetic), but
// inet_aton() reads `127.1`, `2130706433` and `0x7f.1` as 127.0.0.1, and a resolver built on it
// (glibc getaddrinfo, cgo builds of Go) dials that. Debian's Caddy 2.6.2 answered 502 "no such host"
// for all three (measured), but another build may not.
const NUMERIC_TAIL = /(?:^|\.)(?:\d+|0x[0-9a-f]*)$/i;

/** True when `host` (no brackets) names this node: loopback, unspecified, localhost, IPv4 shorthand, or one of own.hosts. */
function isThisNode(host: string, own: OwnEndpoints): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  const family = isIP(h);
  if (family === 0) return isLocalhostName(h) || NUMERIC_TAIL.test(h) || hostSet(own).names.has(h);
  const ip = canonicalIp(h);
  // A dotted quad is loopback (127/8) or unspecified (0/8) by its first octet; addressClass()'s
  // BlockLists cost ~25 µs a call, too much for every upstream of a 5,000-route render.
  const first = isIP(ip) === 4 ? ip.slice(0, ip.indexOf('.')) : null;
  if (first === '127' || first === '0') return true;
  if (first === null) {
    const cls = addressClass(ip);
    if (cls === 'loopback' || cls === 'unspecified') return true;
  }
  return hostSet(own).ips.has(ip);
}

/**
 * Why a proxy upstream (`host:port`, `[v6]:port`, syntax already checked) would reach one of our
 * own listeners, or null. Refused: a host that is this node (loopback, unspecified, `localhost`,
 * node_ip, listen_ip, this host's name, IPv4 shorthand) AND a port in `own.ports`. Loopback
 * services on other ports stay allowed.
 */
export function upstreamOwnProblem(upstream: string, own: OwnEndpoints): string | null {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(upstream);
  if (!m) return null;
  const listener = own.ports.find((p) => p.port === Number(m[3]));
  if (!listener || !isThisNode(m[1] ?? m[2] ?? '', own)) return null;
  return `${upstream} is this node's ${listener.what}: a route must not reach dnsproxy's own listeners`;
}

/**
 * Why a route may not serve `host`, or null: `localhost` and every name below it (RFC 6761) and
 * loopback or unspecified IP literals. A route for them would let any client that reaches Caddy
 * send `Host: localhost` on to a local service that trusts it (Caddy's admin API did).
 */
export function routeHostProblem(host: string): string | null {
  const h = host.toLowerCase().replace(/\.$/, '');
  if (isLocalhostName(h)) return `${host} always means this host (RFC 6761); a route must not serve it`;
  const cls = addressClass(h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h);
  if (cls === 'loopback' || cls === 'unspecified') return `${host} is a ${cls} address; a route must not serve it`;
  return null;
}

/** The first reason (route hosts first, then upstreams) why a route would expose or reach our own endpoints, or null. */
export function routeOwnProblem(route: { hosts: readonly string[]; upstreams: readonly string[] }, own: OwnEndpoints): string | null {
  for (const h of route.hosts) {
    const problem = routeHostProblem(h);
    if (problem) return `host ${problem}`;
  }
  for (const u of route.upstreams) {
    const problem = upstreamOwnProblem(u, own);
    if (problem) return `upstream ${problem}`;
  }
  return null;
}
