// Inbound mail: what the SMTP port accepts without AUTH (mail for the domains we host, as their
// MX) and how it is checked. Pure decisions (recipient, DMARC verdict, header edits) plus one
// I/O step, checkMessage(): SPF, DKIM, DMARC (and ARC when present) by mailauth against the DNS
// resolver given (resolver.ts). The listener (server.ts) turns the kinds returned here into
// SMTP replies.
import { authenticate, type AuthenticateResult } from 'mailauth';
import type { DnsResolver } from '../resolver.js';
import { matchRule } from '../queue/route.js';
import type { Rule } from '../../model/mail.js';

/**
 * The whole check may take this long (SPF alone may make 10 lookups, each up to
 * DNS_TIMEOUT_MS); past it the client gets 451 4.4.3 and retries, well inside its own DATA
 * timeout (RFC 5321 4.5.3.2.6: 10 min).
 */
export const CHECK_TIMEOUT_MS = 60_000;

/**
 * More Received fields than this is a mail loop (RFC 5321 6.3 calls 100 a "large" threshold):
 * e.g. a rule forwarding a hosted domain to a smarthost that hands it back to us as the MX.
 */
export const MAX_RECEIVED = 100;

export type InboundRecipient = { kind: 'routed'; rule: Rule } | { kind: 'not_hosted' } | { kind: 'no_route' };

/**
 * Whether an unauthenticated client may send to `recipientDomain`. Only the domains we host; and
 * only through a rule that names the domain (route.ts, source `inbound`): a catch-all rule is for
 * outgoing mail and would hand the message to a smarthost that brings it back to us.
 *
 *   domain       rules                                    kind
 *   not hosted   any                                      not_hosted (550 5.7.1: never an open relay)
 *   hosted       one with recipient_domain = domain       routed
 *   hosted       only catch-alls (recipient_domain null)  no_route   (451 4.3.5: fixing the rules lets it in)
 */
export function inboundRecipient(hosted: ReadonlySet<string>, rules: readonly Rule[], senderDomain: string, recipientDomain: string): InboundRecipient {
  if (!recipientDomain || !hosted.has(recipientDomain)) return { kind: 'not_hosted' };
  const rule = matchRule(rules, { account: '', senderDomain, recipientDomain, source: 'inbound' });
  return rule ? { kind: 'routed', rule } : { kind: 'no_route' };
}

/** The results that decide, one word each as in Authentication-Results (`none` when not evaluated). */
export interface AuthSummary {
  spf: string;
  /** `pass` when any signature passed, else the first signature's result, else `none`. */
  dkim: string;
  dmarc: string;
  /** The From: domain DMARC was evaluated for, and its policy (p=, or sp= for a subdomain). */
  dmarcDomain?: string;
  dmarcPolicy?: string;
}

export function summarize(r: Pick<AuthenticateResult, 'spf' | 'dkim' | 'dmarc'>): AuthSummary {
  const sigs = r.dkim.results ?? [];
  const dkim = sigs.some((s) => s.status.result === 'pass') ? 'pass' : (sigs[0]?.status.result ?? 'none');
  return {
    spf: r.spf ? r.spf.status.result : 'none',
    dkim,
    dmarc: r.dmarc ? r.dmarc.status.result : 'none',
    ...(r.dmarc && r.dmarc.domain ? { dmarcDomain: r.dmarc.domain } : {}),
    ...(r.dmarc && r.dmarc.policy ? { dmarcPolicy: String(r.dmarc.policy).toLowerCase() } : {}),
  };
}

export type InboundVerdict = { kind: 'accept' } | { kind: 'reject'; reason: string } | { kind: 'defer'; reason: string };

/**
 * What DMARC decides (pct= is not sampled: a failing message is always refused):
 *
 *   dmarc       policy       spf or dkim temperror   verdict
 *   fail        reject       no                      reject (550 5.7.1)
 *   fail        reject       yes                     defer (451 4.4.3): it may pass once DNS answers
 *   temperror   (unknown)    any                     defer (451 4.4.3): the policy could not be fetched
 *   anything else                                    accept, the results in Authentication-Results
 *
 * Deferring what a DNS failure decides (RFC 7489 leaves it to the receiver) costs a real sender
 * a retry; accepting would let a p=reject domain's spoofs in whenever our DNS fails, and
 * rejecting would bounce real mail for our fault. quarantine, none and permerror are accepted
 * with their result for the mailbox to act on.
 */
export function verdict(s: AuthSummary): InboundVerdict {
  const domain = s.dmarcDomain ?? 'the From: domain';
  if (s.dmarc === 'temperror') return { kind: 'defer', reason: `The DMARC policy of ${domain} could not be looked up (DNS: temperror), try again later` };
  if (s.dmarc !== 'fail' || s.dmarcPolicy !== 'reject') return { kind: 'accept' };
  if (s.spf === 'temperror' || s.dkim === 'temperror')
    return { kind: 'defer', reason: `DMARC of ${domain} (p=reject) fails only because a DNS lookup failed (spf=${s.spf}, dkim=${s.dkim}), try again later` };
  return { kind: 'reject', reason: `DMARC policy of ${domain} is reject and the message fails it (spf=${s.spf}, dkim=${s.dkim})` };
}

// ---- the header section -------------------------------------------------------------------

interface HeaderField {
  /** Lower-case field name. */
  name: string;
  /** The field as it came, continuation lines and line end included. */
  text: string;
}

/** The header fields of `raw` (latin1, so bytes survive) and the rest from the blank line on. */
function splitHeader(raw: Buffer): { fields: HeaderField[]; rest: string } {
  const s = raw.toString('latin1');
  const fields: HeaderField[] = [];
  let i = 0;
  while (i < s.length && s[i] !== '\r' && s[i] !== '\n') {
    // A field runs to the first line end not followed by a space or tab (folding).
    let end = i;
    for (;;) {
      const nl = s.indexOf('\n', end);
      if (nl < 0) {
        end = s.length;
        break;
      }
      end = nl + 1;
      if (s[end] !== ' ' && s[end] !== '\t') break;
    }
    const text = s.slice(i, end);
    const colon = text.indexOf(':');
    fields.push({ name: (colon < 0 ? text : text.slice(0, colon)).trim().toLowerCase(), text });
    i = end;
  }
  return { fields, rest: s.slice(i) };
}

/** How many Received fields `raw` carries (hops so far). */
export function receivedCount(raw: Buffer): number {
  return splitHeader(raw).fields.filter((f) => f.name === 'received').length;
}

/** The authserv-id an Authentication-Results value starts with (comments and version dropped). */
function authservId(fieldText: string): string {
  const value = fieldText.slice(fieldText.indexOf(':') + 1).replace(/\([^()]*\)/g, ' ');
  return (value.split(';')[0] ?? '').trim().split(/\s+/)[0]?.toLowerCase() ?? '';
}

/**
 * `raw` without the Authentication-Results fields that claim to be ours (authserv-id =
 * `ourId`): a sender must not be able to forge the verdict the mailbox trusts us for
 * (RFC 8601 5). Every other byte stays as it was.
 */
export function stripOwnAuthResults(raw: Buffer, ourId: string): Buffer {
  const { fields, rest } = splitHeader(raw);
  const id = ourId.toLowerCase();
  const forged = (f: HeaderField) => f.name === 'authentication-results' && authservId(f.text) === id;
  if (!fields.some(forged)) return raw;
  return Buffer.from(fields.filter((f) => !forged(f)).map((f) => f.text).join('') + rest, 'latin1');
}

// ---- the check (I/O: DNS) ----------------------------------------------------------------

export interface SmtpClient {
  /** The client's address (SPF's `ip`). */
  ip: string;
  /** What it said in EHLO/HELO. */
  helo: string;
  /** MAIL FROM, '' for the null sender (SPF then checks postmaster@<helo>). */
  sender: string;
}

export interface InboundCheck {
  /** Received-SPF and Authentication-Results, CRLF-terminated, to prepend to the message. */
  headers: string;
  summary: AuthSummary;
  verdict: InboundVerdict;
}

/**
 * SPF (client IP, HELO, MAIL FROM), DKIM, DMARC and ARC of `raw` by mailauth, asking `resolver`;
 * `authservId` (our host name) names us in Authentication-Results. No BIMI (it would fetch logos).
 * Rejects when the check does not finish within `timeoutMs` or mailauth throws: the caller
 * answers 451 so the sender tries again. DNS failures on single lookups are not errors: they
 * show as temperror in the results.
 */
export async function checkMessage(raw: Buffer, client: SmtpClient, opts: { resolver: DnsResolver; authservId: string; timeoutMs?: number }): Promise<InboundCheck> {
  let timer: NodeJS.Timeout | undefined;
  const timeoutMs = opts.timeoutMs ?? CHECK_TIMEOUT_MS;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`SPF/DKIM/DMARC check took longer than ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    const result = await Promise.race([
      authenticate(raw, { ip: client.ip, helo: client.helo, sender: client.sender, mta: opts.authservId, resolver: opts.resolver, disableBimi: true }),
      timeout,
    ]);
    const summary = summarize(result);
    return { headers: result.headers, summary, verdict: verdict(summary) };
  } finally {
    clearTimeout(timer);
  }
}
