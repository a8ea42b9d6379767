// The DNS the mail relay asks when it checks inbound mail (SPF, DKIM, DMARC, ARC with mailauth).
// One narrow interface, mailauth's: `(name, rrtype) → records`, failing with the error codes of
// node:dns (`ENOTFOUND` = NXDOMAIN, `ENODATA` = the name exists without records of that type,
// anything else = a temporary failure). Two implementations: node:dns (production) and an
// in-memory zone (tests, and anyone who wants to see what a record would do).
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { AuthenticateOptions } from 'mailauth';
import { addressClass } from '../model/address.js';

export type DnsResolver = NonNullable<AuthenticateOptions['resolver']>;

/** Per query; a resolver that does not answer makes the check a temporary failure (451), not a hang. */
export const DNS_TIMEOUT_MS = 5000;
/** Tries per query and server (node:dns doubles the timeout on each). */
const DNS_TRIES = 2;

/**
 * node:dns with its own Resolver: the servers given (ip or ip:port, e.g. our own DNS server
 * 127.0.0.1:53), else the system's (/etc/resolv.conf). No cache: every check asks again.
 */
export function systemResolver(servers: readonly string[] = [], timeoutMs = DNS_TIMEOUT_MS): DnsResolver {
  const r = new Resolver({ timeout: timeoutMs, tries: DNS_TRIES });
  if (servers.length) r.setServers([...servers]);
  return (name, rrtype) => r.resolve(name, rrtype) as ReturnType<DnsResolver>;
}

/** `ip`, `ip:port`, `[v6]:port` or `v6` (mail_dns_servers' forms) as address and port (53 unless given). */
function serverAddress(server: string): { ip: string; port: number } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(server);
  if (bracketed) return { ip: bracketed[1]!, port: Number(bracketed[2] ?? 53) };
  const v4 = /^([0-9.]+)(?::(\d+))?$/.exec(server);
  if (v4) return { ip: v4[1]!, port: Number(v4[2] ?? 53) };
  return { ip: server, port: 53 };
}

/**
 * Why `mail serve` must not start with these settings, or undefined: mail_dns_servers names this
 * node's own DNS server (dns_port on listen_ip, or with a wildcard listen_ip on a loopback address
 * or node_ip) while upstreams is empty. Our server then answers only our zones and
 * refuses every other name, so the SPF/DKIM/DMARC checks of every outside sender would end in
 * temperror (and the MX lookups of `mx` providers would fail).
 */
export function mailDnsProblem(c: { mail_dns_servers: readonly string[]; upstreams: readonly string[]; listen_ip: string; dns_port: number; node_ip: string }): string | undefined {
  if (c.upstreams.length || c.dns_port === 0) return undefined;
  // Ours: listen_ip itself; with a wildcard listener also loopback and node_ip (0.0.0.0 takes IPv4 only).
  const wildcard = (ip: string) => c.listen_ip === '::' || (c.listen_ip === '0.0.0.0' && isIP(ip) === 4);
  const ours = (ip: string) => ip === c.listen_ip || (wildcard(ip) && (addressClass(ip) === 'loopback' || ip === c.node_ip));
  const own = c.mail_dns_servers.filter((server) => {
    const { ip, port } = serverAddress(server);
    return port === c.dns_port && ours(ip);
  });
  if (!own.length) return undefined;
  return (
    `mail_dns_servers: ${own.join(', ')} is this node's own DNS server, which answers only its own zones while upstreams is empty: ` +
    'the SPF/DKIM/DMARC checks of mail from every other domain would fail (temperror). Point mail_dns_servers at a resolver, ' +
    'leave it empty (the system\'s resolvers), or set upstreams so that our server forwards other names'
  );
}

/** Records by type at one name; `TXT` values are lists of strings (the record's chunks). */
export type ZoneName = { [rrtype: string]: unknown[] };

/**
 * A zone in memory. A name absent from `zone` is NXDOMAIN (`ENOTFOUND`); a name present without
 * the asked type is NODATA (`ENODATA`); `'SERVFAIL'` fails every query for that name
 * (`ESERVFAIL`). Names are case-insensitive, without the trailing dot. `queries` records what was
 * asked, in order.
 */
export function memoryResolver(zone: Record<string, ZoneName | 'SERVFAIL'>): DnsResolver & { queries: string[] } {
  const byName = new Map(Object.entries(zone).map(([k, v]) => [k.toLowerCase().replace(/\.$/, ''), v]));
  const queries: string[] = [];
  const fail = (code: string, name: string, rrtype: string) => Object.assign(new Error(`query${rrtype} ${code} ${name}`), { code, hostname: name });
  const resolve = async (name: string, rrtype: string) => {
    const key = name.toLowerCase().replace(/\.$/, '');
    queries.push(`${key} ${rrtype}`);
    const entry = byName.get(key);
    if (entry === undefined) throw fail('ENOTFOUND', name, rrtype);
    if (entry === 'SERVFAIL') throw fail('ESERVFAIL', name, rrtype);
    const records = entry[rrtype.toUpperCase()];
    if (!records?.length) throw fail('ENODATA', name, rrtype);
    return structuredClone(records) as Awaited<ReturnType<DnsResolver>>;
  };
  return Object.assign(resolve, { queries });
}

/** dns2's TYPE numbers of the record types the checks ask. */
const DNS2_TYPES: Record<string, number> = { A: 1, NS: 2, CNAME: 5, MX: 15, TXT: 16, AAAA: 28 };

/**
 * One DNS server asked with the dns2 client (UDP), in mailauth's shape: `dnsproxy mail domain
 * check` asks our own server this way, so what it validates is what our server answers.
 */
export function dns2Resolver(host: string, port: number, timeoutMs = DNS_TIMEOUT_MS): DnsResolver {
  const fail = (code: string, name: string, rrtype: string) => Object.assign(new Error(`query${rrtype} ${code} ${name}`), { code, hostname: name });
  return (async (name: string, rrtype: string) => {
    const { default: dns2 } = await import('dns2');
    const type = rrtype.toUpperCase();
    const num = DNS2_TYPES[type];
    if (num === undefined) throw fail('ENOTIMP', name, rrtype);
    const ask = dns2.UDPClient({ dns: host, port, timeout: timeoutMs });
    let res;
    // As node:dns does (DNS_TRIES): a datagram lost or a reply late on a busy host is asked again
    // before the check reports a temporary failure.
    for (let attempt = 1; !res; attempt++) {
      try {
        res = await ask(name, type, undefined, { recursive: false });
      } catch {
        if (attempt >= DNS_TRIES) throw fail('ETIMEOUT', name, rrtype);
      }
    }
    if (res.header.rcode === 3) throw fail('ENOTFOUND', name, rrtype);
    if (res.header.rcode !== 0) throw fail('ESERVFAIL', name, rrtype);
    const answers = res.answers.filter((a) => a.type === num);
    if (!answers.length) throw fail('ENODATA', name, rrtype);
    const out = answers.map((a) => {
      if (type === 'TXT') return Array.isArray(a.data) ? a.data : [String(a.data)];
      if (type === 'MX') return { exchange: a.exchange, priority: a.priority };
      if (type === 'CNAME' || type === 'NS') return a.domain ?? a.ns;
      return a.address;
    });
    return out as Awaited<ReturnType<DnsResolver>>;
  });
}
