// Which proxy upstreams reach this host (Caddy's admin API, this API, the relay), a metadata
// service or a multicast group. Only an admin token may add a route, or change a record, so that
// an upstream reaches one of them: mutate() compares internalReach() before and after the write,
// inside its transaction.
import { deviceOfHost } from '../model/device.js';
import { BlockList, isIP } from 'node:net';
import { isInternalAddress, isLocalhostName } from '../model/address.js';
import { absolute, zoneOf } from '../model/name.js';
import { recordRouteId, type Resolver } from '../proxy/desired.js';
import type { RecordStore } from '../store/records.js';
import type { RouteStore } from '../store/routes.js';

export interface ReachDeps {
  zones: readonly string[];
  /** This node's own addresses (node_ip, listen_ip, and every local address when listen_ip is unspecified). */
  ownAddresses: readonly string[];
  routes: RouteStore;
  records: RecordStore;
  /** What the DNS server answers for a name now (the committed state, synthesised glue included). */
  resolve: Resolver;
}

/** Addresses whose check is remembered at most (bounds memory, not correctness). */
const MAX_KNOWN = 10_000;
/** CNAMEs followed at most, as the DNS lookup does in-zone. */
const MAX_CNAME_HOPS = 8;

/** `*.<ancestor>` for every ancestor of `name` inside `zone` (the apex included). */
function wildcardsAbove(name: string, zone: string): string[] {
  const out: string[] = [];
  for (let at = name.indexOf('.') + 1; at > 0 && at < name.length && name.length - at >= zone.length; at = name.indexOf('.', at) + 1) out.push(`*.${name.slice(at)}`);
  return out;
}

/**
 * Addresses the stored records (this transaction's view) give `host`: A/AAAA at the name or at a
 * wildcard above it, CNAMEs followed in-zone. A superset of what the DNS answers, so a change
 * that makes a name reach an internal address is never missed.
 */
function storedAddresses(deps: ReachDeps, host: string): string[] {
  const out: string[] = [];
  let names = [absolute(host)];
  for (let hop = 0; hop <= MAX_CNAME_HOPS && names.length; hop++) {
    const next: string[] = [];
    for (const name of names) {
      const zone = zoneOf(name, deps.zones);
      if (!zone) continue;
      for (const owner of [name, ...wildcardsAbove(name, zone)])
        for (const r of deps.records.list({ name: owner })) {
          // Per-view values too (split horizon): Caddy's resolver may sit in any view.
          if (r.type === 'A' || r.type === 'AAAA') out.push(...r.values, ...Object.values(r.views ?? {}).flatMap((v) => v.values));
          else if (r.type === 'CNAME') next.push(...r.values);
        }
    }
    names = next;
  }
  return out;
}

export function reachChecker(deps: ReachDeps): () => Map<string, string> {
  const own = new BlockList();
  for (const a of deps.ownAddresses) {
    const family = isIP(a);
    if (family) own.addAddress(a, family === 4 ? 'ipv4' : 'ipv6');
  }
  // An address's answer never changes, and a check costs several BlockList lookups: remember them.
  const known = new Map<string, boolean>();
  const internal = (ip: string): boolean => {
    let yes = known.get(ip);
    if (yes === undefined) {
      const family = isIP(ip);
      yes = family !== 0 && (isInternalAddress(ip) || own.check(ip, family === 4 ? 'ipv4' : 'ipv6'));
      if (known.size >= MAX_KNOWN) known.clear();
      known.set(ip, yes);
    }
    return yes;
  };
  /** The internal addresses (or localhost names) `upstream` reaches. */
  const reaches = (upstream: string): string[] => {
    const at = upstream.lastIndexOf(':');
    const host = upstream.slice(0, at).replace(/^\[(.*)\]$/, '$1');
    if (isIP(host)) return internal(host) ? [host] : [];
    if (isLocalhostName(host)) return [host];
    // A tailnet device (`device:<name>`): its addresses now; this node itself among the devices reaches here.
    if (deviceOfHost(host) !== null) return (deps.resolve(host.toLowerCase()) ?? []).filter(internal);
    if (!zoneOf(absolute(host), deps.zones)) return []; // dialled by name by Caddy: see docs/security.md
    return [...new Set([...(deps.resolve(host.toLowerCase()) ?? []), ...storedAddresses(deps, host)])].filter(internal);
  };
  /** `route upstream address` → a sentence, for every upstream that reaches an internal address now. */
  return () => {
    const found = new Map<string, string>();
    const add = (id: string, upstreams: readonly string[]) => {
      for (const u of upstreams) for (const addr of reaches(u)) found.set(`${id} ${u} ${addr}`, `route ${id}: upstream ${u} reaches ${addr}, this host or a metadata service`);
    };
    for (const r of deps.routes.upstreams()) add(r.id, r.upstreams);
    for (const r of deps.records.proxiedUpstreams()) add(recordRouteId(r.name), r.upstreams);
    return found;
  };
}
