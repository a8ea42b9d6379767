// SMTP AUTH credential checks: an account's password (scrypt) or one of its API keys (SHA-256,
// apikeys.ts). Contract: verify() never blocks the event loop — scrypt runs on libuv's thread
// pool, at most MAX_CONCURRENT_HASHES at a time, and a repeated successful login within
// CACHE_TTL_MS costs one HMAC instead of another scrypt. Failures are never cached (each costs a
// full hash; the caller's AuthThrottle delays the reply). Key last-used times are written in
// batches on a timer, never on the AUTH path.
import { createHmac, randomBytes } from 'node:crypto';
import { logger } from '../../log/index.js';
import { keyHash, keyState, looksLikeKey } from './apikeys.js';
import { dummyHash, verifyPassword } from './password.js';
import type { Account } from '../../model/mail.js';
import type { MailStore } from '../store.js';

/** A successful password login is remembered this long (a client sending a message per connection pays scrypt once per 5 min). */
export const CACHE_TTL_MS = 5 * 60_000;
/** Remembered logins at most; the oldest go first. Bounds memory, not correctness (a miss costs one scrypt). */
const CACHE_MAX = 1000;
/**
 * scrypt hashes running at once. libuv's pool has 4 threads (UV_THREADPOOL_SIZE) shared with file
 * I/O and dns.lookup (which delivery needs): a burst of logins may take two, never all four.
 */
const MAX_CONCURRENT_HASHES = 2;
/** Logins waiting for a hash slot; beyond this the login gets 454 4.7.0 (try again) instead of a growing queue. */
const MAX_WAITING_HASHES = 64;
/** Key last-used times are written this often (one transaction), and on close(). */
export const KEY_TOUCH_FLUSH_MS = 5000;

export interface AuthOk {
  account: Account;
  /** The key the session logged in with; undefined for the password. */
  keyId?: string;
}

/** Too many logins are waiting for a hash slot: a transient refusal (454), not a wrong password. */
export class AuthBusyError extends Error {}

/** Runs at most `max` tasks at once, queueing up to `maxWaiting` more. */
class Limiter {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(
    private readonly max: number,
    private readonly maxWaiting: number,
  ) {}
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.max) {
      if (this.waiting.length >= this.maxWaiting) throw new AuthBusyError('too many logins waiting');
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else this.running++;
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next(); // hand the slot over: `running` stays
      else this.running--;
    }
  }
}

export interface AuthenticatorOptions {
  cacheTtlMs?: number;
  touchFlushMs?: number;
  maxConcurrentHashes?: number;
  maxWaitingHashes?: number;
  now?: () => number;
  /** password.ts verifyPassword unless given (tests count the hashes). */
  verifyPassword?: (password: string, stored: string) => Promise<boolean>;
}

export class Authenticator {
  private readonly log = logger('mail.auth');
  private readonly now: () => number;
  private readonly ttl: number;
  /**
   * Verified password logins: HMAC(process secret, stored hash ‖ password) → valid until (ms). The
   * HMAC key is random per process, so the map reveals nothing usable (not even a fast hash of
   * the password to attack offline); the stored hash in the input means a changed password or a
   * re-created account never matches an old entry.
   */
  private readonly cache = new Map<string, number>();
  private readonly secret = randomBytes(32);
  /** One scrypt per credential at a time: a client opening five pooled connections at once waits for one hash. */
  private readonly inflight = new Map<string, Promise<boolean>>();
  private readonly hashes: Limiter;
  private readonly verifyPassword: (password: string, stored: string) => Promise<boolean>;
  /** Key id → last use (ms), not yet written. */
  private readonly used = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly store: MailStore,
    opts: AuthenticatorOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.ttl = opts.cacheTtlMs ?? CACHE_TTL_MS;
    this.hashes = new Limiter(opts.maxConcurrentHashes ?? MAX_CONCURRENT_HASHES, opts.maxWaitingHashes ?? MAX_WAITING_HASHES);
    this.verifyPassword = opts.verifyPassword ?? verifyPassword;
    this.timer = setInterval(() => this.flush(), opts.touchFlushMs ?? KEY_TOUCH_FLUSH_MS);
    this.timer.unref();
  }

  /**
   * The account `username` (name or email) logs in as with `secret` (its password or a live key
   * of that account), or undefined. Throws AuthBusyError when the hash queue is full, and store
   * errors as they come.
   */
  async verify(username: string, secret: string): Promise<AuthOk | undefined> {
    const found = this.store.login(username);
    if (looksLikeKey(secret)) {
      const key = this.store.keyByHash(keyHash(secret));
      // A matching hash means this is that key (not a password that looks like one): decide here.
      if (key) {
        if (!found || key.account !== found.account.name || keyState(key.expires_at, this.now()) === 'expired') return undefined;
        this.used.set(key.id, this.now());
        return { account: found.account, keyId: key.id };
      }
    }
    // An unknown user costs one scrypt too, so timing does not tell which names exist.
    if (!found) {
      await this.hashes.run(async () => this.verifyPassword(secret, await dummyHash()));
      return undefined;
    }
    const id = createHmac('sha256', this.secret).update(found.hash).update('\0').update(secret).digest('base64');
    const until = this.cache.get(id);
    if (until !== undefined && until > this.now()) return { account: found.account };
    this.cache.delete(id);
    let pending = this.inflight.get(id);
    if (!pending) {
      pending = this.hashes.run(() => this.verifyPassword(secret, found.hash)).finally(() => this.inflight.delete(id));
      this.inflight.set(id, pending);
    }
    if (!(await pending)) return undefined;
    this.cache.set(id, this.now() + this.ttl);
    if (this.cache.size > CACHE_MAX) this.cache.delete(this.cache.keys().next().value!);
    return { account: found.account };
  }

  /** The account `username` (its name or email) names, or undefined: what a login's failures are counted against. */
  accountOf(username: string): string | undefined {
    return this.store.login(username)?.account.name;
  }

  /**
   * `secret` as an API key of the account `username` names, live: the login, else undefined.
   * A hash lookup, never scrypt: what a locked-out account still takes (a key cannot be guessed,
   * and an owner whose password someone else is guessing keeps its apps running).
   */
  verifyKey(username: string, secret: string): AuthOk | undefined {
    if (!looksLikeKey(secret)) return undefined;
    const found = this.store.login(username);
    const key = this.store.keyByHash(keyHash(secret));
    if (!found || !key || key.account !== found.account.name || keyState(key.expires_at, this.now()) === 'expired') return undefined;
    this.used.set(key.id, this.now());
    return { account: found.account, keyId: key.id };
  }

  /** Whether a session that logged in with key `keyId` may go on (the key still exists and has not expired). */
  keyLive(keyId: string): boolean {
    return this.store.keyLive(keyId, this.now());
  }

  /** Writes pending key last-used times; on a store error they are kept for the next try. */
  flush(): void {
    if (!this.used.size) return;
    const batch = new Map(this.used);
    this.used.clear();
    try {
      this.store.touchKeys(batch);
    } catch (e) {
      for (const [k, v] of batch) if (!this.used.has(k)) this.used.set(k, v);
      this.log.warn('writing key last-used times failed; retrying', { error: (e as Error).message });
    }
  }

  /** Flushes and stops the timer. Safe to call twice. */
  close(): void {
    clearInterval(this.timer);
    this.flush();
  }
}
