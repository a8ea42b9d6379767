// Routes' extra ports (src/model/route-listen.ts) → one Caddy server per port. Pure, used by render.ts.
import { endpointsOf } from './guard.js';
import { ID_PREFIX, type DesiredRoute, type ProxySettings } from './types.js';
import { listenProtocol } from '../model/route-listen.js';

/** The Caddy server name of an extra port. */
export const portServerName = (port: number): string => `${ID_PREFIX}port-${port}`;

export interface PortGroup {
  port: number;
  protocol: 'http' | 'https';
  routes: DesiredRoute[];
}

/** Why a port is none of a route's business: one of our own listeners (the API refuses it; rows stored before are caught here). */
export function ownPortProblem(port: number, settings: ProxySettings): string | null {
  const own = endpointsOf(settings).ports.find((p) => p.port === port);
  if (own) return `port ${port} is this node's ${own.what}`;
  const log = settings.accessLog ? Number(/:(\d+)$/.exec(settings.accessLog)?.[1]) : 0;
  if (log === port) return `port ${port} is this node's access-log listener (stats_port)`;
  return null;
}

/**
 * Groups the selected routes (id order) by extra port. A route is left out, with the reason, when
 * its port is one of ours, when an earlier route holds the port with the other protocol (HTTP vs
 * TLS: one server cannot be both), or when `blocked` names the port (another process holds it).
 */
export function portGroups(routes: readonly DesiredRoute[], settings: ProxySettings, blocked: ReadonlyMap<number, string> = new Map()): { kept: DesiredRoute[]; groups: PortGroup[]; skipped: { id: string; reason: string }[] } {
  const groups = new Map<number, PortGroup>();
  const kept: DesiredRoute[] = [];
  const skipped: { id: string; reason: string }[] = [];
  for (const r of routes) {
    if (!r.listen) {
      kept.push(r);
      continue;
    }
    const { port } = r.listen;
    const protocol = listenProtocol(r.tls);
    const problem = ownPortProblem(port, settings) ?? blocked.get(port) ?? null;
    const group = groups.get(port);
    if (problem) skipped.push({ id: r.id, reason: `listen.port: ${problem}` });
    else if (group && group.protocol !== protocol) skipped.push({ id: r.id, reason: `listen.port: port ${port} is served with ${group.protocol} by route ${group.routes[0]!.id}; this route would need ${protocol}` });
    else {
      if (group) group.routes.push(r);
      else groups.set(port, { port, protocol, routes: [r] });
      kept.push(r);
    }
  }
  return { kept, groups: [...groups.values()].sort((a, b) => a.port - b.port), skipped };
}
