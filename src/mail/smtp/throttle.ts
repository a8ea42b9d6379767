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

// ---- lockout: failures counted per account and per client address, across connections ----
//
// The delay above is per reply: a client that opens many connections, or drops each one as soon
// as a 235 fails to come, guesses as fast as it can connect (a probe made 9.5–14 guesses a second
// from one address, and the right password was taken at once after 147 failures). So failures
// are also counted per account (whatever address they come from) and per client address
// (whatever account they try); LOCKOUT.failures of them start a lockout, during which AUTH for
// that account, or from that address, is answered 454 4.7.0 without looking at the secret: the
// right password too, so guessing on learns nothing. Each lockout that follows another within
// LOCKOUT.forgetMs lasts twice as long, up to LOCKOUT.maxMs:
//
//   failures (no success between)   lockout
//   1–9                             none (535 after the delay above)
//   10                              1 min
//   10 more                         2 min
//   …                               4, 8, 15, 15, … min
//   none for 1 h                    forgotten: the next lockout is 1 min again
//
// A name that is no account is counted like one, so a lockout tells nothing about which names
// exist. State lives in the relay's memory (a restart forgets it), like the rate limits.

export interface LockoutOptions {
  /** Failures that start a lockout. */
  failures: number;
  /** The first lockout; each next one doubles. */
  baseMs: number;
  maxMs: number;
  /** A key without a failure this long starts over. */
  forgetMs: number;
}

export const LOCKOUT: LockoutOptions = {
  /** A person mistyping, or a client with a stale password retrying with the delay above, gets nowhere near 10 before someone notices; a guesser gets 10 per lockout. */
  failures: 10,
  /** Short enough that an owner locked out by someone else's guessing waits little at first. */
  baseMs: 60_000,
  /** Bounds how long anyone who knows a user name can lock its owner out: 10 guesses buy 15 min at most (40 guesses an hour per account). */
  maxMs: 15 * 60_000,
  /** Longer than the longest lockout: a guesser who waits one out meets the next, doubled. */
  forgetMs: 60 * 60_000,
};

interface LockoutEntry {
  failures: number;
  /** Lockouts so far (the next lasts baseMs·2^level). */
  level: number;
  lockedUntil: number;
  last: number;
}

export class LoginLockout {
  private readonly entries = new Map<string, LockoutEntry>();

  constructor(
    readonly opts: LockoutOptions = LOCKOUT,
    private readonly now: () => number = Date.now,
  ) {}

  /** Milliseconds `key` stays locked out; 0 when it is not. */
  lockedFor(key: string): number {
    const e = this.entries.get(key);
    return e ? Math.max(0, e.lockedUntil - this.now()) : 0;
  }

  /** Records a failure for `key`; returns the lockout it started (ms), 0 when none. */
  fail(key: string): number {
    const t = this.now();
    const prev = this.entries.get(key);
    const e: LockoutEntry = prev && t - prev.last < this.opts.forgetMs ? { ...prev, last: t } : { failures: 0, level: 0, lockedUntil: 0, last: t };
    e.failures++;
    let locked = 0;
    if (e.failures >= this.opts.failures) {
      locked = Math.min(this.opts.baseMs * 2 ** e.level, this.opts.maxMs);
      e.level++;
      e.failures = 0;
      e.lockedUntil = t + locked;
    }
    this.entries.delete(key); // re-insert: Map order is then least recently failed first
    this.entries.set(key, e);
    if (this.entries.size > MAX_TRACKED_IPS) this.evictOne(t);
    return locked;
  }

  /** A successful login: the failures counted for `key` are forgotten (a lockout in force stays). */
  succeed(key: string): void {
    const e = this.entries.get(key);
    if (e && e.lockedUntil <= this.now()) this.entries.delete(key);
  }

  /** Drops the least recently failed entry that is not locked (a spray of names must not free a locked account). */
  private evictOne(t: number): void {
    for (const [k, e] of this.entries)
      if (e.lockedUntil <= t) {
        this.entries.delete(k);
        return;
      }
    this.entries.delete(this.entries.keys().next().value!);
  }
}

// ---- concurrent logins per client address ----------------------------------------------

/**
 * AUTH exchanges one client address may have in progress; more wait their turn (FIFO). A failed
 * one holds its place until its 535 is sent (the delay above), whether or not its client is
 * still there: parallel connections then buy an address no more guesses than this many.
 */
export const MAX_AUTHS_PER_ADDRESS = 2;

export class LoginSlots {
  private readonly busy = new Map<string, { running: number; waiting: (() => void)[] }>();

  constructor(readonly max: number = MAX_AUTHS_PER_ADDRESS) {}

  /** Resolves with the function that gives the slot back, once `key` has one. */
  async acquire(key: string): Promise<() => void> {
    let s = this.busy.get(key);
    if (!s) this.busy.set(key, (s = { running: 0, waiting: [] }));
    if (s.running >= this.max) await new Promise<void>((resolve) => s.waiting.push(resolve));
    else s.running++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = s.waiting.shift();
      if (next) return next(); // the slot passes on: `running` stays
      if (--s.running === 0) this.busy.delete(key);
    };
  }

  /** AUTHs of `key` running or waiting (tests, logs). */
  inProgress(key: string): number {
    const s = this.busy.get(key);
    return s ? s.running + s.waiting.length : 0;
  }
}
