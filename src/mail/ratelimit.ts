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
