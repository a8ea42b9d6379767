// Client networks as written in settings: an IP literal or `address/prefix` (IPv4 or IPv6), and
// the node:net BlockList that matches peers against a list of them.
import { BlockList, isIP } from 'node:net';

export interface Cidr {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** `a.b.c.d`, `a.b.c.d/n` (0-32), `x::y`, `x::/n` (0-128); a bare address is its /32 or /128. Host bits may be set (`192.0.2.7/24` is 192.0.2.0/24). */
export function parseCidr(text: string): Cidr | { error: string } {
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  const family = isIP(address);
  // isIP() accepts a zone id (`fe80::1%eth0`), which a client address never carries.
  if (family === 0 || address.includes('%')) return { error: 'must be an IP address or a network (a.b.c.d/n, x::/n)' };
  const max = family === 4 ? 32 : 128;
  const raw = slash < 0 ? String(max) : text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(raw) || Number(raw) > max) return { error: `prefix length must be 0-${max}` };
  return { address, prefix: Number(raw), family: family === 4 ? 'ipv4' : 'ipv6' };
}

/** A BlockList holding every entry (each must parse: see parseCidr); IPv4-mapped IPv6 peers match their IPv4 networks. */
export function cidrList(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const c = parseCidr(entry);
    if ('error' in c) throw new Error(`"${entry}": ${c.error}`);
    list.addSubnet(c.address, c.prefix, c.family);
  }
  return list;
}

/** True when the IP literal `ip` (as a socket reports it) is in `list`. */
export function inCidrList(list: BlockList, ip: string): boolean {
  const family = isIP(ip);
  return family !== 0 && list.check(ip, family === 4 ? 'ipv4' : 'ipv6');
}
