// The device list from tailscaled's status (LocalAPI `GET /localapi/v0/status`, or
// `tailscale status --json`: the same ipnstate.Status JSON). Pure: JSON in, checked devices out.
//
// Shape used (tailscale ipn/ipnstate): Status { BackendState, TailscaleIPs, Self: PeerStatus,
// Peer: { [node public key]: PeerStatus } }; PeerStatus { ID, HostName, DNSName, TailscaleIPs,
// Online, LastSeen }. Nothing from it reaches DNS data or Caddy unchecked: names must be one DNS
// label, addresses must parse as IP literals (no zone id); anything else is left out with a reason.
import { z } from 'zod';
import { canonicalIpv6 } from '../model/rdata.js';
import { deviceNameProblem, plainIp, type Device } from '../model/device.js';

/** At most this many devices are taken from one status (a tailnet of more is refused whole: a bound on memory and per-poll work). */
export const MAX_DEVICES = 10_000;
/** Addresses taken per device (Tailscale gives one IPv4 and one IPv6). */
const MAX_ADDRESSES = 8;
/** Go's zero time.Time, what Tailscale reports for "never". */
const ZERO_TIME = /^0001-01-01T/;

const peerStatus = z
  .object({
    ID: z.string().max(256).optional(),
    HostName: z.string().max(1024).optional(),
    DNSName: z.string().max(1024).optional(),
    TailscaleIPs: z.array(z.string().max(64)).max(64).nullish(),
    Online: z.boolean().optional(),
    LastSeen: z.string().max(64).optional(),
  })
  .passthrough();
export type PeerStatus = z.infer<typeof peerStatus>;

const statusSchema = z
  .object({
    BackendState: z.string().optional(),
    Self: peerStatus.nullish(),
    Peer: z.record(z.string(), peerStatus).nullish(),
  })
  .passthrough();

export interface ParsedStatus {
  devices: Device[];
  /** Peers left out, with why (bad name, no usable address, a name given twice). */
  skipped: string[];
  backendState: string | null;
}

/** The device name of a peer: the first label of its MagicDNS name, else its host name lower-cased. */
function nameOf(p: PeerStatus): string {
  const dns = (p.DNSName ?? '').replace(/\.$/, '');
  return (dns ? dns.split('.')[0]! : (p.HostName ?? '')).toLowerCase();
}

function device(p: PeerStatus, self: boolean): Device | { error: string } {
  const name = nameOf(p);
  const problem = deviceNameProblem(name);
  if (problem) return { error: `peer ${JSON.stringify((p.DNSName || p.HostName || p.ID || '?').slice(0, 80))}: name ${problem}` };
  const ipv4: string[] = [];
  const ipv6: string[] = [];
  for (const a of (p.TailscaleIPs ?? []).slice(0, MAX_ADDRESSES)) {
    const f = plainIp(a);
    if (f === 4) ipv4.push(a);
    else if (f === 6) ipv6.push(canonicalIpv6(a));
  }
  if (ipv4.length + ipv6.length === 0) return { error: `peer ${name}: no usable address` };
  const dnsName = p.DNSName && !deviceNameProblem(name) && /^[A-Za-z0-9.-]{1,253}\.?$/.test(p.DNSName) ? `${p.DNSName.replace(/\.$/, '').toLowerCase()}.` : null;
  const seen = p.LastSeen && !ZERO_TIME.test(p.LastSeen) && !Number.isNaN(Date.parse(p.LastSeen)) ? new Date(p.LastSeen).toISOString() : null;
  return {
    name,
    dns_name: dnsName,
    host_name: (p.HostName ?? '').slice(0, 255),
    id: p.ID ?? '',
    ipv4: [...new Set(ipv4)].sort(),
    ipv6: [...new Set(ipv6)].sort(),
    online: self || p.Online === true,
    last_seen: seen,
    self,
  };
}

/** Parses a status document; throws with a reason when it is not one. */
export function parseStatus(json: unknown): ParsedStatus {
  const parsed = statusSchema.safeParse(json);
  if (!parsed.success) throw new Error(`not a tailscale status: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).slice(0, 3).join('; ')}`);
  const peers = Object.values(parsed.data.Peer ?? {});
  if (peers.length + 1 > MAX_DEVICES) throw new Error(`tailscale status lists ${peers.length} peers; at most ${MAX_DEVICES} are taken`);
  const devices = new Map<string, Device>();
  const skipped: string[] = [];
  const add = (p: PeerStatus, self: boolean) => {
    const d = device(p, self);
    if ('error' in d) return void skipped.push(d.error);
    const other = devices.get(d.name);
    // Two devices with one name: MagicDNS gives the second a suffix, so this only comes from a broken list; the first (or Self) wins.
    if (other) return void skipped.push(`peer ${d.name}: the name is taken by ${other.id || 'another device'}`);
    devices.set(d.name, d);
  };
  if (parsed.data.Self) add(parsed.data.Self, true);
  for (const p of peers) add(p, false);
  return { devices: [...devices.values()].sort((a, b) => (a.name < b.name ? -1 : 1)), skipped, backendState: parsed.data.BackendState ?? null };
}
