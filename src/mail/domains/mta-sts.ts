// The MTA-STS policy of each mail domain served over HTTPS by Caddy (RFC 8461 §3.3):
// `https://mta-sts.<domain>/.well-known/mta-sts.txt`, as a static-response route (src/proxy/static.ts)
// the controller adds to the proxy's desired routes (ProxyState.useStatics). The A record of
// `mta-sts.<domain>` (node_ip) is published with the domain's other records (domain.ts).
//
// | route id                    | host              | path                         | answer                                    |
// |-----------------------------|-------------------|------------------------------|-------------------------------------------|
// | mail:mta-sts:<domain>       | mta-sts.<domain>  | /.well-known/mta-sts.txt     | 200 text/plain: version, mode, mx, max_age |
// (any other path of that host: Caddy's 404 "no route for this path")
//
// The body is made here from validated fields only (the mode enum, mail_hostname, a constant
// max_age) and checked again by the renderer. A policy changes only with its id in the
// `_mta-sts` TXT record, so it changes only with a record: what ProxyState.useStatics() needs.
import { staticResponse, type RouteShape, type TlsMode } from '../../model/route.js';
import { prepared, type Db } from '../../store/db.js';
import { mailDomainSettings, mtaStsPolicy } from './domain.js';

/** Where RFC 8461 §3.3 has senders fetch the policy. */
export const MTA_STS_PATH = '/.well-known/mta-sts.txt';
export const mtaStsRouteId = (domain: string) => `mail:mta-sts:${domain}`;

/**
 * A source of the MTA-STS routes of every mail domain in `db` (read at each call). An unchanged
 * route is returned as the same object, so the proxy sees no change and Caddy is not reloaded.
 */
export function mtaStsRoutes(db: Db, o: { hostname: string; tls: Exclude<TlsMode, 'off'> }): () => RouteShape[] {
  const last = new Map<string, { text: string; route: RouteShape }>();
  return () => {
    const rows = prepared(db, 'SELECT domain, settings FROM mail_published_domains ORDER BY domain').all() as { domain: string; settings: string }[];
    const out: RouteShape[] = [];
    const seen = new Set<string>();
    for (const row of rows) {
      const settings = mailDomainSettings.parse(JSON.parse(row.settings));
      // Served in every mode: `none` is how a domain takes its policy back (RFC 8461 §8.3).
      const respond = staticResponse.parse({ status: 200, content_type: 'text/plain; charset=utf-8', body: mtaStsPolicy({ hostname: o.hostname, settings }) });
      const route: RouteShape = { id: mtaStsRouteId(row.domain), hosts: [`mta-sts.${row.domain}`], path: MTA_STS_PATH, upstreams: [], tls: o.tls, health_path: null, respond };
      const text = JSON.stringify(route);
      const known = last.get(route.id);
      const kept = known?.text === text ? known.route : route;
      last.set(route.id, { text, route: kept });
      seen.add(route.id);
      out.push(kept);
    }
    for (const id of last.keys()) if (!seen.has(id)) last.delete(id);
    return out;
  };
}
