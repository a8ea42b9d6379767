// A mail account's API key as a bearer token for the controller's mail API (src/api/auth.ts asks
// through AccountKeys): which live key a secret is, and its per-key rate limit (src/limit.ts).
import { keyHash, keyState, looksLikeKey } from './apikeys.js';
import type { MailStore } from '../store.js';

/** Bearer secrets that are not API tokens: a mail account's API key, and its rate limit. */
export interface AccountKeys {
  /** The account and key id `secret` is a live key of, else undefined. */
  account: (secret: string) => { account: string; keyId: string } | undefined;
  /** null when the key may make another request now, else the seconds until it may. */
  take: (keyId: string) => number | null;
  /** Requests per minute per key (for the 429's message). */
  perMinute: number;
}

/** The account (and key) a bearer secret is a live API key of, else undefined. */
export function accountOfKey(store: MailStore, secret: string, nowMs: number): { account: string; keyId: string } | undefined {
  if (!looksLikeKey(secret)) return undefined;
  const key = store.keyByHash(keyHash(secret));
  if (!key || keyState(key.expires_at, nowMs) === 'expired') return undefined;
  return { account: key.account, keyId: key.id };
}

