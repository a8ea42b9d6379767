// Where the relay may connect when it hands a message to an `smtp` or `http` provider. A provider's
// host comes from whoever may write providers, and the relay runs next to Caddy's admin API, the
// controller and the cloud's metadata service: `http://127.0.0.1:2019/stop` as an API URL once
// stopped Caddy. So, unless the provider sets `allow_private: true`:
//
//   destination                                          refused                   because
//   loopback, 0.0.0.0/8 and ::, link-local, metadata,   always                    it is this host, its metadata
//     multicast (src/model/address.ts INTERNAL_CLASSES)                            service, or no single host
//   localhost and names below it                         always                    this host (RFC 6761)
//   this node's own addresses (node_ip, listen_ip)       always                    our own ports: API, DNS, relay
//   private (RFC 1918, ULA), Tailscale, public           never                     a LAN smarthost is a use
//
// Checked twice: when the provider is saved (its host is an IP literal or a localhost name: 400
// naming the field, providerDestinationIssues()), and when it is dialled, on every address its
// name resolves to (guardedLookup(): the socket connects to an address that was checked, so a
// name that answers differently the second time, DNS rebinding, gains nothing). A refusal at
// delivery is a permanent failure (the message bounces) whose reason names the host, the address
// and its class.
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import type { FieldIssue } from '../../errors.js';
import { addressClass, INTERNAL_CLASSES, isLocalhostName } from '../../model/address.js';
import type { ProviderConfig } from '../../model/mail.js';

/** The `code` of the error a refused connection fails with (smtp.ts and http.ts make it a permanent failure). */
export const DESTINATION_REFUSED = 'EDESTINATION';

export type DestinationError = Error & { code: typeof DESTINATION_REFUSED };

const CLASS_TEXT: Record<string, string> = {
  loopback: 'a loopback address (this host)',
  unspecified: 'an unspecified address (this host)',
  link_local: 'a link-local address (cloud metadata services answer there)',
  metadata: 'a cloud metadata address',
  multicast: 'a multicast address',
};

/** What `ip` is when the relay may not connect to it without allow_private ("a loopback address (this host)"), or undefined. */
function refusedKind(ip: string, own: ReadonlySet<string>): string | undefined {
  const cls = addressClass(ip);
  if (cls !== null && INTERNAL_CLASSES.has(cls)) return CLASS_TEXT[cls] ?? `a ${cls} address`;
  if (own.has(ip)) return "this node's own address";
  return undefined;
}

/** Why the relay may not connect to `ip` without allow_private, or undefined. */
export function refusedAddress(ip: string, own: ReadonlySet<string>): string | undefined {
  const kind = refusedKind(ip, own);
  return kind && `${ip} is ${kind}`;
}

/** Why the relay may not connect to `host` (an IP literal, IPv6 bracketed or not, or a name) before resolving it, or undefined. */
export function refusedHost(host: string, own: ReadonlySet<string>): string | undefined {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  if (isIP(bare)) return refusedAddress(bare, own);
  if (isLocalhostName(bare)) return `${host} is this host (localhost)`;
  return undefined;
}

export function destinationError(message: string): DestinationError {
  const extra: { code: typeof DESTINATION_REFUSED } = { code: DESTINATION_REFUSED };
  return Object.assign(new Error(message), extra);
}

export const isDestinationError = (e: unknown): e is DestinationError => (e as { code?: unknown } | null)?.code === DESTINATION_REFUSED;

/** What a refusal says: the host, why, and how an operator allows it. */
const refusal = (host: string, why: string) => `provider host ${host}: ${why}: refused (set allow_private on the provider to allow it)`;

/**
 * A node:net lookup that resolves `hostname` (every address: `dns.lookup` unless `base` is given)
 * and fails with DESTINATION_REFUSED when any address is refused: a name with one internal
 * address among public ones is not a provider, it is a trick. Give it to net.connect / http.request
 * as `lookup`: they connect to an address it returned.
 */
export function guardedLookup(own: ReadonlySet<string>, base: LookupFunction = dnsLookup): LookupFunction {
  return (hostname: string, options: LookupOptions, callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void) => {
    const named = refusedHost(hostname, own);
    if (named) return process.nextTick(() => callback(destinationError(refusal(hostname, named)), ''));
    base(hostname, { ...options, all: true }, (err, found) => {
      if (err) return callback(err, '');
      const addresses = Array.isArray(found) ? found : [{ address: found, family: isIP(found) }];
      for (const a of addresses) {
        const kind = refusedKind(a.address, own);
        if (kind) return callback(destinationError(refusal(hostname, `resolves to ${a.address}, ${kind}`)), '');
      }
      if (options.all) return callback(null, addresses);
      const first = addresses[0];
      if (!first) return callback(Object.assign(new Error(`${hostname}: no address`), { code: 'ENOTFOUND' }), '');
      callback(null, first.address, first.family);
    });
  };
}

/**
 * A DNS host name: LDH labels of 1–63 characters, 253 in all, a trailing dot allowed. The last
 * label is no number (no top-level domain is one): a resolver reads `127.1`, `2130706433` or
 * `0x7f000001` as an IPv4 address, which must be written a.b.c.d to be checked as one.
 */
const HOST_NAME = /^(?=.{1,253}\.?$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$/;
const NUMERIC_LABEL = /(?:^|\.)(?:\d+|0x[0-9a-f]*)\.?$/i;

/** What is wrong with `host` as an SMTP provider's host (a host name, or an IP address without brackets or zone), or undefined. */
export function hostSyntaxProblem(host: string): string | undefined {
  if (isIP(host)) return host.includes('%') ? 'must be a host name or an IP address (without a zone id)' : undefined;
  if (!HOST_NAME.test(host)) return 'must be a host name or an IP address';
  if (NUMERIC_LABEL.test(host)) return 'must be a host name or an IP address (an IPv4 address is written a.b.c.d)';
  return undefined;
}

/** The host part of an `http` provider's URL (IPv6 without brackets; IPv4 as URL normalises it, so 0x7f.1 is 127.0.0.1). */
export const urlHost = (url: string) => new URL(url).hostname.replace(/^\[(.*)\]$/, '$1');

/**
 * The save-time checks of a provider (400 naming the field): an `smtp` host that is neither a host
 * name nor an IP address; an `smtp` host or `http` URL that is refused (table above) without
 * allow_private. Names are checked again, resolved, at every delivery.
 */
export function providerDestinationIssues(c: ProviderConfig, own: ReadonlySet<string> = new Set()): FieldIssue[] {
  const hint = (why: string) => `${why}: the relay does not connect there unless the provider sets allow_private: true`;
  if (c.type === 'smtp') {
    const syntax = hostSyntaxProblem(c.host);
    if (syntax) return [{ path: 'host', message: syntax }];
    const why = c.allow_private ? undefined : refusedHost(c.host, own);
    return why ? [{ path: 'host', message: hint(why) }] : [];
  }
  if (c.type === 'http') {
    const why = c.allow_private ? undefined : refusedHost(urlHost(c.url), own);
    return why ? [{ path: 'url', message: hint(why) }] : [];
  }
  return [];
}
