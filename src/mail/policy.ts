// Retry policy: how an attempt's error is classified and what state the message goes to next.
// Pure functions; the clock comes in as an argument.
import type { NextState } from './messages.js';
import type { Attempt, AttemptOutcome, Message } from './schema.js';

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
  const permanent = code !== null && code >= 500 && code < 600 && code !== 503 && err.code !== 'EAUTH';
  return { outcome: permanent ? 'permanent' : 'transient', code, response };
}

/** The message's state after `attempt`, which was its (attempts + 1)-th. */
export function afterAttempt(msg: Pick<Message, 'attempts' | 'created_at_ms'>, attempt: Attempt, nowMs: number, p: RetryPolicy): NextState {
  const base = { provider: attempt.provider, next_attempt_at: nowMs };
  if (attempt.outcome === 'delivered') return { ...base, status: 'delivered', last_error: null };
  const error = `${attempt.provider ?? '-'}: ${attempt.response}`;
  if (attempt.outcome === 'permanent') return { ...base, status: 'bounced', last_error: error };
  const deadline = msg.created_at_ms + p.giveUpMs;
  if (nowMs >= deadline) return { ...base, status: 'failed', last_error: `gave up after ${msg.attempts + 1} attempts; last: ${error}` };
  // One last attempt at the deadline rather than none past it.
  return { ...base, status: 'deferred', next_attempt_at: Math.min(nowMs + backoff(msg.attempts + 1, p), deadline), last_error: error };
}
