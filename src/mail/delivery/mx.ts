// Direct delivery (`mx` providers): the recipient domain's mail hosts from DNS, tried in order
// over SMTP (port 25 unless the provider says otherwise) with opportunistic STARTTLS.
//
// Lookup (RFC 5321 §5.1, RFC 7505), pure apart from the injected resolver; `random` orders equal
// preferences (RFC 5321 asks senders to spread load over them):
//
//   MX answer for the domain                 route
//   10 mx1, 20 mx2, 10 mx3                   mx1, mx3 (shuffled), then mx2
//   only "0 ." (null MX)                     null: the domain accepts no mail → bounced, 5.1.10
//   NODATA (the name exists, no MX)          the domain itself, preference 0 (implicit MX)
//   NXDOMAIN                                 no_domain → bounced, 5.1.2
//   SERVFAIL, timeout, REFUSED, …            error → deferred, 4.4.3
//
// Delivery: each host in order, each of its addresses (A, then AAAA), at most MAX_ADDRESSES
// connections per attempt:
//
//   that address                                    then
//   accepts (250), maybe refusing some recipients   done: delivered (refused ones split off as usual)
//   refuses with 5xx (not 503), or refuses some     done: bounced (per recipient, policy.ts settle())
//     recipient with 5xx
//   connection error, timeout, 4xx, 503             next address / next host
//   STARTTLS handshake fails                        the same address once more without TLS
//   every host tried                                deferred; the log names each host and its error
//
// Implicit MX without any A/AAAA record is bounced (5.1.2); an MX host without addresses is
// skipped. Replies we make up ourselves carry code null and start with their RFC 3463 status,
// which the DSN reports (dsn.ts enhancedStatus()).
import { isIP } from 'node:net';
import nodemailer from 'nodemailer';
import { z } from 'zod';
import { refusedAddress } from './destination.js';
import { isPermanent } from '../queue/policy.js';
import { domainOf } from '../../model/mail.js';
import { smtpFailure, smtpSuccess, TIMEOUTS, type Outcome } from './smtp.js';

/**
 * The DNS lookups direct delivery makes: mailauth's resolver shape (src/mail/resolver.ts), failing
 * with node:dns codes: `ENOTFOUND` = NXDOMAIN, `ENODATA` = the name exists without that type,
 * anything else = could not resolve now. Results are checked on arrival.
 */
export type MxResolver = (name: string, rrtype: 'MX' | 'A' | 'AAAA') => Promise<unknown>;

/**
 * The DNS servers (ip or ip:port) direct delivery asks:
 *
 *   mail_dns_servers   upstreams   servers
 *   set                any         mail_dns_servers
 *   empty              set         our DNS server (listen_ip:dns_port; answers our zones, forwards the rest), then the upstreams
 *   empty              empty       none: the system's (/etc/resolv.conf)
 *
 * node:dns moves to the next server only when one does not answer (not on REFUSED), and ours
 * refuses names outside our zones when it has no upstreams: so it comes first only when it forwards.
 */
export function mxDnsServers(c: { configured: readonly string[]; upstreams: readonly string[]; listenIp: string; dnsPort: number }): string[] {
  if (c.configured.length) return [...c.configured];
  if (!c.upstreams.length || c.dnsPort === 0) return [...c.upstreams];
  const ip = c.listenIp === '0.0.0.0' ? '127.0.0.1' : c.listenIp === '::' ? '::1' : c.listenIp;
  return [isIP(ip) === 6 ? `[${ip}]:${c.dnsPort}` : `${ip}:${c.dnsPort}`, ...c.upstreams];
}

/** Connections one attempt may open (Postfix's smtp_mx_address_limit is 5): a domain with 20 dead hosts costs 20 connect timeouts otherwise. */
export const MAX_ADDRESSES = 5;

const mxAnswer = z.array(z.object({ exchange: z.string(), priority: z.number().int().min(0).max(65535) }));
const addressAnswer = z.array(z.string().refine((v) => isIP(v) !== 0, 'must be an IP address'));

export interface MxHost {
  /** Lower-case, no trailing dot. */
  name: string;
  preference: number;
}

export type MxRoute =
  /** Try these in order; `implicit`: the domain had no MX, so its own name stands in (preference 0). */
  | { kind: 'hosts'; hosts: MxHost[]; implicit: boolean }
  | { kind: 'null' }
  | { kind: 'no_domain' }
  | { kind: 'error'; error: string };

const dnsCode = (e: unknown): string => {
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' || typeof code === 'number' ? String(code) : (e as Error).message;
};
const bare = (name: string) => name.toLowerCase().replace(/\.$/, '');

/**
 * The hosts to try for `domain`, in order. Equal preferences are ordered by `random()` (Math.random
 * in production; a constant gives a stable order: by name). Never throws.
 */
export async function lookupMx(domain: string, resolver: MxResolver, random: () => number = Math.random): Promise<MxRoute> {
  let records: z.infer<typeof mxAnswer>;
  try {
    records = mxAnswer.parse(await resolver(domain, 'MX'));
  } catch (e) {
    const code = dnsCode(e);
    if (code === 'ENODATA') return { kind: 'hosts', hosts: [{ name: bare(domain), preference: 0 }], implicit: true };
    if (code === 'ENOTFOUND') return { kind: 'no_domain' };
    return { kind: 'error', error: e instanceof z.ZodError ? 'malformed MX answer' : code };
  }
  // node:dns gives the root ("0 .", RFC 7505) as an empty exchange.
  const real = records.map((r) => ({ name: bare(r.exchange), preference: r.priority })).filter((r) => r.name !== '');
  if (!real.length) return records.length ? { kind: 'null' } : { kind: 'hosts', hosts: [{ name: bare(domain), preference: 0 }], implicit: true };
  const seen = new Set<string>();
  const hosts = real
    .map((h) => ({ ...h, key: random() }))
    .sort((a, b) => a.preference - b.preference || a.key - b.key || a.name.localeCompare(b.name))
    .filter((h) => !seen.has(h.name) && seen.add(h.name))
    .map(({ name, preference }) => ({ name, preference }));
  return { kind: 'hosts', hosts, implicit: false };
}

export type HostAddresses = { kind: 'addresses'; addresses: string[] } | { kind: 'none' } | { kind: 'error'; error: string };

/** A host's addresses, IPv4 first. `none`: NXDOMAIN, or neither A nor AAAA. An IP literal (seen in broken MX records) is its own address. */
export async function hostAddresses(name: string, resolver: MxResolver): Promise<HostAddresses> {
  if (isIP(name)) return { kind: 'addresses', addresses: [name] };
  const [v4, v6] = await Promise.all(
    (['A', 'AAAA'] as const).map(async (rrtype) => {
      try {
        return { addresses: addressAnswer.parse(await resolver(name, rrtype)) };
      } catch (e) {
        const code = dnsCode(e);
        return code === 'ENODATA' || code === 'ENOTFOUND' ? { addresses: [] } : { error: e instanceof z.ZodError ? `malformed ${rrtype} answer` : code };
      }
    }),
  );
  const addresses = [...(v4?.addresses ?? []), ...(v6?.addresses ?? [])];
  if (addresses.length) return { kind: 'addresses', addresses };
  const error = v4?.error ?? v6?.error;
  return error ? { kind: 'error', error } : { kind: 'none' };
}

export interface MxEnvelope {
  from: string;
  /** All of one domain: the queue splits messages per recipient domain (messages.ts). */
  to: readonly string[];
}

/**
 * One SMTP session to one address (`host`: the MX name, for SNI); `tlsFailed` asks for the retry
 * without TLS. Injected so the order of tries can be tested without sockets.
 */
export type MxConnect = (o: { address: string; host: string; port: number; tls: boolean }, envelope: MxEnvelope, message: Buffer) => Promise<Outcome & { tlsFailed?: boolean }>;

/** A connection's outcome ends the attempt when the host accepted, or refused the message or a recipient for good. */
const isFinal = (o: Outcome) => o.outcome !== 'transient' || (o.refused ?? []).some((r) => isPermanent(r.code));

export class MxSender {
  constructor(
    private readonly resolver: MxResolver,
    private readonly connect: MxConnect,
    private readonly random: () => number = Math.random,
  ) {}

  /**
   * One attempt for `envelope` (one recipient domain) on `port`. Never throws. With `own` (this
   * node's addresses; null when the provider sets allow_private), an MX address that is this host,
   * link-local, metadata or multicast is skipped (destination.ts): the recipient domain's owner
   * must not make the relay talk to our own ports. When every address is skipped the message
   * bounces (5.4.6, as Postfix's "mail loops back to myself").
   */
  async send(port: number, envelope: MxEnvelope, message: Buffer, own: ReadonlySet<string> | null = null): Promise<Outcome> {
    const domain = domainOf(envelope.to[0] ?? '');
    const local = (outcome: Outcome['outcome'], response: string): Outcome => ({ outcome, code: null, response: response.slice(0, 1000) });
    const route = await lookupMx(domain, this.resolver, this.random);
    if (route.kind === 'null') return local('permanent', `5.1.10 ${domain} accepts no mail (null MX, RFC 7505)`);
    if (route.kind === 'no_domain') return local('permanent', `5.1.2 ${domain} does not exist (NXDOMAIN)`);
    if (route.kind === 'error') return local('transient', `4.4.3 MX lookup for ${domain} failed: ${route.error}`);

    const failures: string[] = [];
    let lastReply: Outcome | undefined;
    let connections = 0;
    let skipped = 0;
    for (const host of route.hosts) {
      if (connections >= MAX_ADDRESSES) break;
      const found = await hostAddresses(host.name, this.resolver);
      if (found.kind === 'none' && route.implicit) return local('permanent', `5.1.2 ${domain} has no MX and no A/AAAA record`);
      if (found.kind !== 'addresses') {
        failures.push(`${host.name}: ${found.kind === 'none' ? 'no A/AAAA record' : `address lookup failed: ${found.error}`}`);
        continue;
      }
      for (const address of found.addresses.slice(0, MAX_ADDRESSES - connections)) {
        const refused = own && refusedAddress(address, own);
        if (refused) {
          skipped++;
          failures.push(`${host.name}[${address}]: not dialled, ${refused}`);
          continue;
        }
        connections++;
        let o = await this.connect({ address, host: host.name, port, tls: true }, envelope, message);
        if (o.tlsFailed) o = await this.connect({ address, host: host.name, port, tls: false }, envelope, message);
        const { tlsFailed: _, ...outcome } = o;
        if (isFinal(outcome)) return outcome;
        failures.push(`${host.name}[${address}]: ${outcome.response}`);
        if (outcome.code !== null) lastReply = outcome;
      }
    }
    const tried = failures.join('; ') || 'no host to try';
    if (connections === 0 && skipped > 0) return local('permanent', `5.4.6 no MX host of ${domain} may be dialled: ${tried}`);
    // The last host that answered speaks for the attempt (its 4xx is what a DSN reports); else none answered.
    if (lastReply) return { outcome: 'transient', code: lastReply.code, response: `${lastReply.response} (tried ${tried})`.slice(0, 1000) };
    return local('transient', `4.4.1 no MX host of ${domain} took the message: ${tried}`);
  }
}

/**
 * The production MxConnect: one nodemailer connection (no pool: every domain has its own hosts)
 * to the address, EHLO as `hostname`. STARTTLS when offered, without verifying the certificate
 * (opportunistic, RFC 7435: refusing an unverified host would only push the mail to plain text);
 * `tls: false` never starts TLS (the retry after a failed handshake).
 */
export function smtpConnect(hostname: string): MxConnect {
  return async ({ address, host, port, tls }, envelope, message) => {
    const transport = nodemailer.createTransport({
      host: address,
      port,
      secure: false,
      ...(tls ? { opportunisticTLS: true } : { ignoreTLS: true }),
      tls: { rejectUnauthorized: false, servername: isIP(host) ? undefined : host },
      name: hostname,
      ...TIMEOUTS,
      logger: false,
    });
    try {
      return smtpSuccess(await transport.sendMail({ envelope: { from: envelope.from, to: [...envelope.to] }, raw: message }));
    } catch (e) {
      const failure = smtpFailure(e);
      return tls && (e as { code?: string }).code === 'ETLS' ? { ...failure, tlsFailed: true } : failure;
    } finally {
      transport.close();
    }
  };
}
