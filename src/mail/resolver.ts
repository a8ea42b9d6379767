// The DNS the mail relay asks when it checks inbound mail (SPF, DKIM, DMARC, ARC with mailauth).
// One narrow interface, mailauth's: `(name, rrtype) → records`, failing with the error codes of
// node:dns (`ENOTFOUND` = NXDOMAIN, `ENODATA` = the name exists without records of that type,
// anything else = a temporary failure). Two implementations: node:dns (production) and an
// in-memory zone (tests, and anyone who wants to see what a record would do).
import { Resolver } from 'node:dns/promises';
import type { AuthenticateOptions } from 'mailauth';

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
