// Retry policy: how an attempt's error is classified and what state the message goes to next.
// Pure functions; the clock comes in as an argument.
import type { NextState } from './messages.js';
import type { Attempt, AttemptOutcome, Message, RecipientReply } from '../../model/mail.js';

export interface RetryPolicy {
  /** Delay after the first failed attempt; doubles per attempt. */
  baseMs: number;
  /** The delay never exceeds this. */
  maxMs: number;
  /** A message still undelivered this long after acceptance fails. */
  giveUpMs: number;
}

/**
 * Delay after `failed` failed attempts: base·2^(failed−1), capped at max.
 * With base 1 min, max 1 h: 1, 2, 4, 8, 16, 32, 60, 60, … minutes.
 */
export function backoff(failed: number, p: Pick<RetryPolicy, 'baseMs' | 'maxMs'>): number {
  return Math.min(p.baseMs * 2 ** Math.max(0, failed - 1), p.maxMs);
}

/** The parts of a nodemailer error we classify on. */
export interface SendError {
  code?: string | undefined;
  responseCode?: number | undefined;
  response?: string | undefined;
  message: string;
}

/**
 * What a failed send means for the message:
 *
 *   error                                         outcome     why
 *   reply 5xx (not 503) to MAIL/RCPT/DATA         permanent   the provider refused this message for good
 *   reply 4xx, or 503                             transient   the provider asks to retry
 *   EAUTH (any reply)                             transient   our credentials: the operator fixes them, the mail waits
 *   no reply (refused, timeout, TLS, DNS)         transient   the provider is unreachable
 */
export function classify(err: SendError): { outcome: AttemptOutcome; code: number | null; response: string } {
  const code = typeof err.responseCode === 'number' ? err.responseCode : null;
  const response = (err.response ?? err.message).slice(0, 1000);
  return { outcome: isPermanent(code) && err.code !== 'EAUTH' ? 'permanent' : 'transient', code, response };
}

/** A reply that refuses for good: 5xx except 503 (bad sequence: our fault, worth a retry). */
export function isPermanent(code: number | null): boolean {
  return code !== null && code >= 500 && code < 600 && code !== 503;
}

/** The message's state after `attempt`, which was its (attempts + 1)-th. */
export function afterAttempt(msg: Pick<Message, 'attempts' | 'created_at_ms'>, attempt: Attempt, nowMs: number, p: RetryPolicy): NextState {
  const base = { provider: attempt.provider, next_attempt_at: nowMs };
  if (attempt.outcome === 'delivered') return { ...base, status: 'delivered', last_error: null };
  const error = `${attempt.provider ?? '-'}: ${attempt.response}`;
  if (attempt.outcome === 'permanent') return { ...base, status: 'bounced', last_error: error };
  const deadline = msg.created_at_ms + p.giveUpMs;
  if (nowMs >= deadline) return { ...base, status: 'failed', last_error: `gave up after ${msg.attempts + 1} attempts; last: ${error}` };
  // Not before the provider asked (Retry-After), and one last attempt at the deadline rather than none past it.
  const wait = Math.max(backoff(msg.attempts + 1, p), attempt.retry_after_ms ?? 0);
  return { ...base, status: 'deferred', next_attempt_at: Math.min(nowMs + wait, deadline), last_error: error };
}

/** One group of a message's recipients after an attempt: the attempt as logged for them and their next state. */
export interface Part {
  rcpt_to: string[];
  attempt: Attempt;
  next: NextState;
  /** The provider's reply for each recipient of the part (what a DSN reports). */
  replies: RecipientReply[];
}

const OUTCOME_ORDER: readonly AttemptOutcome[] = ['delivered', 'transient', 'permanent'];

/**
 * Splits `msg`'s recipients by what the provider answered for each, when RCPT replies differed
 * (`attempt.refused`): the message keeps the first non-empty group in the order below, the
 * others become messages of their own (same body), each with its own state.
 *
 *   provider said                                  message keeps            split off
 *   one reply for all (250, or one error)          everyone, afterAttempt   —
 *   250 with some RCPT refused                     accepted → delivered     RCPT 5xx → bounced; RCPT 4xx → deferred (or failed)
 *   every RCPT refused, some 4xx and some 5xx      4xx → deferred           5xx → bounced
 *
 * A refused recipient's class follows isPermanent(); refusals are matched to recipients
 * case-insensitively, and a recipient without a refusal of its own shares the attempt's outcome.
 */
export function settle(msg: Pick<Message, 'attempts' | 'created_at_ms' | 'rcpt_to'>, attempt: Attempt, nowMs: number, p: RetryPolicy): { self: Part; splits: Part[] } {
  const refused = new Map((attempt.refused ?? []).map((r) => [r.rcpt.toLowerCase(), r]));
  const groups = new Map<AttemptOutcome, RecipientReply[]>();
  for (const rcpt of msg.rcpt_to) {
    const r = refused.get(rcpt.toLowerCase());
    const outcome: AttemptOutcome = r ? (isPermanent(r.code) ? 'permanent' : 'transient') : attempt.outcome;
    groups.set(outcome, [...(groups.get(outcome) ?? []), r ? { ...r, rcpt } : { rcpt, code: attempt.code, response: attempt.response }]);
  }
  const { refused: _, ...logged } = attempt;
  const parts = OUTCOME_ORDER.filter((o) => groups.has(o)).map((outcome): Part => {
    const replies = groups.get(outcome)!;
    const own: Attempt =
      groups.size === 1 || outcome === 'delivered'
        ? logged
        : { ...logged, outcome, code: replies[0]!.code, response: replies.map((r) => `<${r.rcpt}>: ${r.response}`).join('; ').slice(0, 1000) };
    return { rcpt_to: replies.map((r) => r.rcpt), attempt: own, next: afterAttempt(msg, own, nowMs, p), replies };
  });
  const [self, ...splits] = parts;
  return { self: self!, splits };
}
