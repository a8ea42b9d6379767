// Failed-login throttle per client IP. The caller holds back its 535 reply for the returned delay
// on a timer, so only that session waits; other sessions (same IP included) are never blocked.

export interface ThrottleOptions {
  /** Delay after the first failure; doubles per further failure. */
  baseMs: number;
  maxMs: number;
  /** Failures older than this are forgotten. */
  windowMs: number;
}

/** Bounds memory under a spray from many addresses; the oldest entries go first. */
const MAX_TRACKED_IPS = 10_000;

export class AuthThrottle {
  private readonly failures = new Map<string, { count: number; last: number }>();

  constructor(
    private readonly opts: ThrottleOptions,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records a failure from `ip`; returns the ms to wait before replying: base·2^(n−1), capped. */
  fail(ip: string): number {
    const t = this.now();
    const prev = this.failures.get(ip);
    const count = prev && t - prev.last < this.opts.windowMs ? prev.count + 1 : 1;
    this.failures.delete(ip); // re-insert: Map order is then oldest-failure first
    this.failures.set(ip, { count, last: t });
    if (this.failures.size > MAX_TRACKED_IPS) this.failures.delete(this.failures.keys().next().value!);
    return Math.min(this.opts.baseMs * 2 ** (count - 1), this.opts.maxMs);
  }

  succeed(ip: string): void {
    this.failures.delete(ip);
  }
}
