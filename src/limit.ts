// Rate limits shared by the API and the mail side, with an injected clock (no domain imports).

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
