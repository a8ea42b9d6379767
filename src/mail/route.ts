// Routing: which rule a message matches and which provider an attempt uses. Pure functions.
import { domainOf, type Message, type Rule } from './schema.js';

export interface RouteQuery {
  account: string;
  senderDomain: string;
  /** A queued message holds the recipients of one domain (src/mail/messages.ts). */
  recipientDomain: string;
}

/** The first rule, in the order given (the store sorts by priority), whose set conditions all match; null = no route. */
export function matchRule(rules: readonly Rule[], q: RouteQuery): Rule | null {
  return (
    rules.find(
      (r) =>
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
