// Account API keys: the format, the stored hash, and the pure rules for expiry and rotation. An
// SMTP client logs in with a key instead of the account password (same AUTH PLAIN/LOGIN,
// username = account name or email); an account can hold several, so one can be rotated while
// the old one still works for a grace period.
//
// Why SHA-256 and not scrypt (passwords stay scrypt, password.ts): a key is 256 bits from the
// CSPRNG, so there is nothing to guess — a dictionary or brute-force attack on a stolen hash is
// as hopeless against one fast hash as against a slow one. A slow hash only protects low-entropy
// secrets (passwords). The fast hash keeps key logins off the thread pool (microseconds, no
// cache needed) and lets the relay look a key up by its hash through a UNIQUE index. No pepper:
// it would have to live next to the database it protects.
import { createHash, randomBytes } from 'node:crypto';

/** `dpk_` marks a dnsproxy mail key (recognisable to secret scanners), then the id, then the secret. */
const KEY_RE = /^dpk_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$/;

/** A new key: `dpk_<id>_<43 base64url chars = 256 bits>`. The id is public (lists show it), the rest is the secret. */
export function newKey(random: (n: number) => Buffer = randomBytes): { id: string; key: string } {
  const id = random(6).toString('hex');
  return { id, key: `dpk_${id}_${random(32).toString('base64url')}` };
}

/** True when `secret` has a key's shape (a password could too: callers fall back to the password check). */
export const looksLikeKey = (secret: string): boolean => KEY_RE.test(secret);

/** What the database stores: sha256 hex of the whole key. */
export const keyHash = (key: string): string => createHash('sha256').update(key).digest('hex');

export type KeyState = 'active' | 'expiring' | 'expired' | 'revoked';

/** `active`: no expiry; `expiring`: works until `expires_at`; `expired`: refused (535) from `expires_at` on; `revoked`: refused since `revokedAt`. */
export function keyState(expiresAt: string | null, nowMs: number, revokedAt: string | null = null): KeyState {
  if (revokedAt !== null) return 'revoked';
  if (expiresAt === null) return 'active';
  return Date.parse(expiresAt) > nowMs ? 'expiring' : 'expired';
}

export interface KeyExpiry {
  id: string;
  expires_at: string | null;
}

/**
 * What a rotation does to the account's existing keys, given how long they may keep working
 * (`keepOldMs`, 0 = stop now). Pure; the store applies it in the transaction that adds the new key
 * ("removed" keys are revoked there: they stay listed, as revoked).
 *
 * | old key                          | keepOldMs = 0 | keepOldMs = d           |
 * |----------------------------------|---------------|-------------------------|
 * | no expiry                        | removed       | expires at now + d      |
 * | expires after now + d            | removed       | expires at now + d      |
 * | expires before now + d (live)    | removed       | unchanged               |
 * | already expired                  | removed       | removed                 |
 */
export function rotationPlan(old: readonly KeyExpiry[], nowMs: number, keepOldMs: number): { remove: string[]; expire: KeyExpiry[] } {
  const remove: string[] = [];
  const expire: KeyExpiry[] = [];
  const until = nowMs + keepOldMs;
  for (const k of old) {
    const state = keyState(k.expires_at, nowMs);
    if (keepOldMs <= 0 || state === 'expired') remove.push(k.id);
    else if (k.expires_at === null || Date.parse(k.expires_at) > until) expire.push({ id: k.id, expires_at: new Date(until).toISOString() });
  }
  return { remove, expire };
}
