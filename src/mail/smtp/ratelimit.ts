// Token buckets per key (an account, a client IP), in memory: each key may spend `limit` at once
// and earns them back evenly over `perMs`. Pure apart from the clock, which comes in.
//
//   limit 3600 per hour:  a burst of 3600, then one more every second
//   limit 0:              no limit
//
// State lives in the relay process only: a restart forgets it (a fresh burst), which is fine for
// limits meant to stop floods and leaked passwords, not to bill anyone.

export interface RateOptions {
  /** Spendable at once, and earned back per `perMs`; 0 = no limit. */
  limit: number;
  perMs: number;
}

/** Bounds memory under a spray from many keys; the least recently used go first. */
const MAX_TRACKED_KEYS = 10_000;

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    readonly opts: RateOptions,
    private readonly now: () => number = Date.now,
  ) {}

  /** Tokens `key` holds now (refilled), without spending any. */
  private level(key: string, t: number): number {
    const b = this.buckets.get(key);
    if (!b) return this.opts.limit;
    return Math.min(this.opts.limit, b.tokens + ((t - b.at) * this.opts.limit) / this.opts.perMs);
  }

  private set(key: string, tokens: number, t: number): void {
    this.buckets.delete(key); // re-insert: Map order is then least recently used first
    if (tokens >= this.opts.limit) return; // a full bucket is the default: nothing to keep
    this.buckets.set(key, { tokens, at: t });
    if (this.buckets.size > MAX_TRACKED_KEYS) this.buckets.delete(this.buckets.keys().next().value!);
  }

  /** Milliseconds until `key` may spend one; 0 = now. */
  wait(key: string): number {
    if (this.opts.limit === 0) return 0;
    const missing = 1 - this.level(key, this.now());
    return missing <= 0 ? 0 : Math.ceil((missing * this.opts.perMs) / this.opts.limit);
  }

  /** Spends one if `key` has one; false (nothing spent) otherwise. */
  tryTake(key: string): boolean {
    if (this.opts.limit === 0) return true;
    const t = this.now();
    const tokens = this.level(key, t);
    if (tokens < 1) return false;
    this.set(key, tokens - 1, t);
    return true;
  }

  /**
   * Spends one even when `key` has none (it goes into debt and waits longer): for work already
   * let in by wait() that finished after others spent the last token.
   */
  take(key: string): void {
    if (this.opts.limit === 0) return;
    const t = this.now();
    this.set(key, this.level(key, t) - 1, t);
  }
}

/**
 * Things held at once per key (sessions per client address): `tryEnter` takes one if fewer than
 * `max` are held, `leave` gives one back; max 0 = no limit. In memory, like the buckets above.
 */
export class ConcurrencyLimit {
  private readonly held = new Map<string, number>();

  constructor(readonly max: number) {}

  tryEnter(key: string): boolean {
    const n = this.held.get(key) ?? 0;
    if (this.max > 0 && n >= this.max) return false;
    this.held.set(key, n + 1);
    return true;
  }

  leave(key: string): void {
    const n = (this.held.get(key) ?? 0) - 1;
    if (n > 0) this.held.set(key, n);
    else this.held.delete(key);
  }

  count(key: string): number {
    return this.held.get(key) ?? 0;
  }
}

/**
 * Bytes of message data held in memory by all sessions together (DATA received, not yet
 * committed): a session whose next chunk does not fit stops keeping its message and gets 452
 * 4.3.1 at its end (the client retries), so ten clients sending 25 MB each hold at most `max`
 * between them, not 250 MB.
 */
export class DataBudget {
  private used = 0;

  constructor(readonly max: number) {}

  /** Takes `n` bytes if they fit; false (nothing taken) otherwise. */
  take(n: number): boolean {
    if (this.used + n > this.max) return false;
    this.used += n;
    return true;
  }

  give(n: number): void {
    this.used = Math.max(0, this.used - n);
  }

  /** Bytes held now. */
  get inUse(): number {
    return this.used;
  }

  /** Bytes a new message could still take now. */
  get free(): number {
    return Math.max(0, this.max - this.used);
  }
}
