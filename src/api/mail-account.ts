// An account's API key as a bearer token for the mail API: it reaches only the routes marked
// `config: { account: true }` and, there, only its own account (another account's things are 404,
// as if they did not exist). Each key is rate limited (a token bucket per key id, injected clock):
// past the limit, 429 with Retry-After.
import type { FastifyRequest } from 'fastify';
import { AppError } from '../errors.js';
import { keyHash, keyState, looksLikeKey } from '../mail/apikeys.js';
import type { MailStore } from '../mail/store.js';

/** The account (and key) a bearer secret is a live API key of, else undefined. */
export function accountOfKey(store: MailStore, secret: string, nowMs: number): { account: string; keyId: string } | undefined {
  if (!looksLikeKey(secret)) return undefined;
  const key = store.keyByHash(keyHash(secret));
  if (!key || keyState(key.expires_at, nowMs) === 'expired') return undefined;
  return { account: key.account, keyId: key.id };
}

/**
 * Token buckets per key: a burst of `perMinute`, then one every 60/perMinute s. 0 turns the limit
 * off. Buckets of keys not seen for a minute are dropped (they would be full again anyway).
 */
export class KeyRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  constructor(
    private readonly perMinute: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes one request from `id`'s bucket: null when allowed, else the seconds until one is. */
  take(id: string): number | null {
    if (this.perMinute <= 0) return null;
    const now = this.now();
    const rate = this.perMinute / 60_000;
    const b = this.buckets.get(id) ?? { tokens: this.perMinute, at: now };
    b.tokens = Math.min(this.perMinute, b.tokens + (now - b.at) * rate);
    b.at = now;
    this.buckets.set(id, b);
    if (this.buckets.size > 10_000) for (const [k, v] of this.buckets) if (now - v.at > 60_000) this.buckets.delete(k);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return null;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / rate / 1000));
  }
}

/** 404 unless the request may see account `name`'s things (the admin token sees all). */
export function requireOwn(req: FastifyRequest, name: string, what = `no account ${name}`): void {
  if (req.mailAccount !== null && req.mailAccount !== name) throw new AppError('not_found', what);
}
