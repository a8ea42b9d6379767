// What an IP address literal reaches, for the checks that keep client input away from this
// host's own services (Caddy's admin API, the controller, the relay) and from cloud metadata
// endpoints: proxy upstreams, mail provider hosts, DNS client allow-lists.
import { BlockList, isIP } from 'node:net';

/**
 * - `loopback`: this host (127.0.0.0/8, ::1, ::ffff:127.x)
 * - `unspecified`: 0.0.0.0/8, :: (connects to this host on Linux)
 * - `link_local`: 169.254.0.0/16, fe80::/10 (metadata services live here)
 * - `metadata`: cloud metadata endpoints outside link-local (fd00:ec2::254, 100.100.100.200)
 * - `tailnet`: Tailscale's 100.64.0.0/10 and fd7a:115c:a1e0::/48
 * - `private`: RFC 1918, fc00::/7 (unique local)
 * - `multicast`: 224.0.0.0/4, ff00::/8, and 255.255.255.255
 * - `public`: everything else (documentation ranges included)
 */
export type AddressClass = 'loopback' | 'unspecified' | 'link_local' | 'metadata' | 'tailnet' | 'private' | 'multicast' | 'public';

function list(entries: [string, number, 'ipv4' | 'ipv6'][]): BlockList {
  const b = new BlockList();
  for (const [net, prefix, family] of entries) b.addSubnet(net, prefix, family);
  return b;
}

// Order matters: the first class that matches wins (metadata before tailnet: 100.100.100.200 is in 100.64/10).
const CLASSES: [AddressClass, BlockList][] = [
  ['loopback', list([['127.0.0.0', 8, 'ipv4'], ['::1', 128, 'ipv6'], ['::ffff:127.0.0.0', 104, 'ipv6']])],
  ['unspecified', list([['0.0.0.0', 8, 'ipv4'], ['::', 128, 'ipv6'], ['::ffff:0.0.0.0', 104, 'ipv6']])],
  ['link_local', list([['169.254.0.0', 16, 'ipv4'], ['fe80::', 10, 'ipv6'], ['::ffff:169.254.0.0', 112, 'ipv6']])],
  ['metadata', list([['100.100.100.200', 32, 'ipv4'], ['fd00:ec2::254', 128, 'ipv6']])],
  ['tailnet', list([['100.64.0.0', 10, 'ipv4'], ['fd7a:115c:a1e0::', 48, 'ipv6']])],
  ['private', list([['10.0.0.0', 8, 'ipv4'], ['172.16.0.0', 12, 'ipv4'], ['192.168.0.0', 16, 'ipv4'], ['fc00::', 7, 'ipv6'],
    ['::ffff:10.0.0.0', 104, 'ipv6'], ['::ffff:172.16.0.0', 108, 'ipv6'], ['::ffff:192.168.0.0', 112, 'ipv6']])],
  ['multicast', list([['224.0.0.0', 4, 'ipv4'], ['255.255.255.255', 32, 'ipv4'], ['ff00::', 8, 'ipv6']])],
];

/** The class of an IP literal (IPv6 without brackets, no zone id), or null when `ip` is not one. */
export function addressClass(ip: string): AddressClass | null {
  const family = isIP(ip);
  // isIP() accepts a zone id (`fe80::1%eth0`); no value we store or dial may carry one.
  if (family === 0 || ip.includes('%')) return null;
  const type = family === 4 ? 'ipv4' : 'ipv6';
  for (const [cls, block] of CLASSES) if (block.check(ip, type)) return cls;
  return 'public';
}

/** Classes that reach this host or its metadata service: never a destination for client-supplied addresses unless an operator allows it. */
export const INTERNAL_CLASSES: ReadonlySet<AddressClass> = new Set(['loopback', 'unspecified', 'link_local', 'metadata', 'multicast']);

/** True for an IP literal that reaches this host or a metadata service (see INTERNAL_CLASSES). */
export function isInternalAddress(ip: string): boolean {
  const cls = addressClass(ip);
  return cls !== null && INTERNAL_CLASSES.has(cls);
}

/** Host names that always mean this host (RFC 6761 §6.3: localhost and everything below it). */
export function isLocalhostName(host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  return h === 'localhost' || h.endsWith('.localhost') || h === 'localhost.localdomain' || h === 'ip6-localhost' || h === 'ip6-loopback';
}
