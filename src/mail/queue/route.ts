// Routing: which rule a message matches and which provider an attempt uses. Pure functions.
import { domainOf, type Message, type MessageSource, type Rule } from '../../model/mail.js';

export interface RouteQuery {
  account: string;
  senderDomain: string;
  /** A queued message holds the recipients of one domain (src/mail/queue/messages.ts). */
  recipientDomain: string;
  /** `inbound` (mail for a domain we host, no account): only rules naming its recipient domain. Default `submission`. */
  source?: MessageSource;
}

/**
 * The first rule, in the order given (the store sorts by priority), whose set conditions all
 * match; null = no route. Inbound mail skips rules without a recipient domain: a catch-all
 * ("everything via the ISP") is for outgoing mail, and would send mail for our own domain to a
 * smarthost that hands it back to us, its MX.
 *
 *   rule                                 submission from app@example.com   inbound to a@example.com
 *   recipient_domain null                matches                           skipped
 *   recipient_domain example.com         matches mail to example.com       matches
 *   account app                          matches app's mail                never (inbound has no account)
 */
export function matchRule(rules: readonly Rule[], q: RouteQuery): Rule | null {
  const inbound = q.source === 'inbound';
  return (
    rules.find(
      (r) =>
        (!inbound || r.recipient_domain !== null) &&
        (r.account === null || r.account === q.account) &&
        (r.sender_domain === null || r.sender_domain === q.senderDomain) &&
        (r.recipient_domain === null || r.recipient_domain === q.recipientDomain),
    ) ?? null
  );
}

/**
 * The provider for the next attempt, given how many attempts failed so far. The primary gets the
 * first `fallbackAfter` attempts; after that the fallback and the primary take turns, so a primary
 * that comes back is used again. With fallbackAfter = 2:
 *
 *   failed so far   0        1        2         3        4         …
 *   provider        primary  primary  fallback  primary  fallback  …
 */
export function providerFor(rule: Pick<Rule, 'provider' | 'fallback_provider'>, failedAttempts: number, fallbackAfter: number): string {
  if (!rule.fallback_provider || failedAttempts < fallbackAfter) return rule.provider;
  return (failedAttempts - fallbackAfter) % 2 === 0 ? rule.fallback_provider : rule.provider;
}

/**
 * The sender domain a queued message is routed and DKIM-signed as: its sender's, or for a DSN
 * (null sender) the domain it goes back to, which is also the domain of its From: (dsn.ts).
 */
export function routeDomain(m: Pick<Message, 'mail_from' | 'rcpt_to'>): string {
  return domainOf(m.mail_from || (m.rcpt_to[0] ?? ''));
}
