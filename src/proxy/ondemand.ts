// The controller's side of Caddy's on-demand certificates (src/proxy/README.md, "Certificates on
// demand"), on one loopback listener Caddy alone reaches:
//   GET /ask?domain=<name>   (Host: the listener's own address) — Caddy 2.6.2 asks this before it
//     gets a certificate for a name it has none for (caddytls/automation.go onDemandAskRequest:
//     GET with `domain` in the query, redirects not followed, anything but 200 is a denial).
//     200 only for a plain name served with the tls mode of the catch-all policy's issuer;
//     403 otherwise, with the same empty body: the answer is yes or no, nothing else.
//   any other request (Host: a served name) — an HTTP request for a plain TLS name, which Caddy's
//     HTTP dynamic route sent here (our DNS points that name's HTTP question at this listener):
//     308 to its HTTPS URL, as an explicit TLS route's redirect answers. Only a Location header:
//     no request body is read and nothing is proxied (Caddy remains the data plane).
// No bearer token (Caddy cannot send one): the listener binds loopback only and answers only
// loopback peers. Asks are rate-limited (a token bucket on an injected clock) so a flood of
// handshakes with made-up names costs bounded work; over the limit the answer is 429 (a denial).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log/index.js';
import type { TlsMode } from '../model/route.js';

/** Asks answered at once, and earned back over ASK_REFILL_MS: Caddy asks once per name it has no certificate for, so a legitimate burst is the names added at once. */
export const ASK_BURST = 200;
export const ASK_REFILL_MS = 10_000;
/** Caddy's own limit on certificates obtained on demand (tls.automation.on_demand.rate_limit), the brake behind ours: internal issuance is cheap, an ACME CA's limits are not. */
export const ON_DEMAND_INTERVAL = '1m';
export const ON_DEMAND_BURST = 60;
/** A name as Caddy passes it: DNS characters only, at most 253. */
const DOMAIN = /^[a-z0-9_*.-]{1,253}$/;

export interface OnDemandOptions {
  /** A plain name's tls mode (lower-case host, no trailing dot), or undefined when it is not a plain name. */
  lookup: (host: string) => TlsMode | undefined;
  /** The tls mode served on demand (the catch-all policy's issuer). */
  issuer: 'internal' | 'acme';
  /** Caddy's HTTPS port: the redirect keeps it unless it is 443. */
  httpsPort: number;
  now?: () => number;
  burst?: number;
  refillMs?: number;
  log?: Logger;
}

const isLoopback = (address: string | undefined): boolean => !!address && (address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.'));

/** Token bucket on an injected clock: `burst` at once, earned back evenly over `refillMs`. */
export class AskLimit {
  private tokens: number;
  private at: number;
  constructor(
    private readonly burst: number,
    private readonly refillMs: number,
    private readonly now: () => number,
  ) {
    this.tokens = burst;
    this.at = now();
  }

  take(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.at) * this.burst) / this.refillMs);
    this.at = t;
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }
}

/** The ask decision alone: whether Caddy may get a certificate for `domain`. */
export function askAllows(domain: string, o: Pick<OnDemandOptions, 'lookup' | 'issuer'>): boolean {
  const name = domain.toLowerCase().replace(/\.$/, '');
  return DOMAIN.test(name) && o.lookup(name) === o.issuer;
}

/** The request handler (exported for tests that drive it without a socket). */
export interface OnDemandCounts {
  asks: number;
  allowed: number;
  limited: number;
  redirects: number;
}

export function onDemandHandler(o: OnDemandOptions): ((req: http.IncomingMessage, res: http.ServerResponse) => void) & { counts: OnDemandCounts } {
  const limit = new AskLimit(o.burst ?? ASK_BURST, o.refillMs ?? ASK_REFILL_MS, o.now ?? Date.now);
  const counts: OnDemandCounts = { asks: 0, allowed: 0, limited: 0, redirects: 0 };
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const end = (status: number, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-length': '0', 'cache-control': 'no-store', ...headers });
      res.end();
    };
    if (!isLoopback(req.socket.remoteAddress)) return end(403);
    const hostHeader = (req.headers.host ?? '').toLowerCase();
    const host = hostHeader.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
    const url = new URL(req.url ?? '/', 'http://x');
    // Caddy's ask client names the listener itself; a proxied request names the served host.
    if (host === '127.0.0.1' || host === '::1' || host === 'localhost') {
      if (url.pathname !== '/ask' || req.method !== 'GET') return end(404);
      counts.asks++;
      const domain = url.searchParams.get('domain');
      if (domain === null) return end(400);
      if (!limit.take()) {
        counts.limited++;
        o.log?.warn('on-demand ask over its rate limit: denied', { limit: `${o.burst ?? ASK_BURST} per ${o.refillMs ?? ASK_REFILL_MS} ms` });
        return end(429);
      }
      const yes = askAllows(domain, o);
      if (yes) counts.allowed++;
      return end(yes ? 200 : 403);
    }
    const mode = o.lookup(host);
    if (mode === undefined || mode === 'off' || !DOMAIN.test(host)) return end(404);
    counts.redirects++;
    const port = o.httpsPort === 443 ? '' : `:${o.httpsPort}`;
    return end(308, { location: `https://${host}${port}${req.url ?? '/'}` });
  };
  return Object.assign(handler, { counts });
}

export interface OnDemandServer {
  /** The bound loopback address and port (the redirect target our DNS gives Caddy). */
  ip: string;
  port: number;
  /** The ask URL for Caddy's config. */
  askUrl: string;
  counts: OnDemandCounts;
  close(): Promise<void>;
}

/** Listens on `127.0.0.1:<port>` (0: any free port). Loopback only, always. */
export async function startOnDemandServer(o: OnDemandOptions & { port: number }): Promise<OnDemandServer> {
  const handler = onDemandHandler(o);
  const server = http.createServer({ requestTimeout: 10_000, headersTimeout: 5_000 }, handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: o.port }, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    ip: '127.0.0.1',
    port,
    askUrl: `http://127.0.0.1:${port}/ask`,
    counts: handler.counts,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
