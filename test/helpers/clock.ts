import type { Timers } from '../../src/timers.js';

/**
 * A clock and timers that move only when the test says so (a `now` and `timers` to inject):
 * what a component does "later" happens at advance(), so a test can show that nothing more is
 * due instead of sleeping and hoping.
 */
export class ManualClock implements Timers {
  t = 0;
  private seq = 0;
  private readonly due = new Map<number, { at: number; fn: () => void }>();
  readonly now = (): number => this.t;
  setTimeout = (fn: () => void, ms: number): unknown => {
    this.due.set(++this.seq, { at: this.t + ms, fn });
    return this.seq;
  };
  clearTimeout = (handle: unknown): void => void this.due.delete(handle as number);
  /** Timers set and not yet fired or cleared. */
  get pending(): number {
    return this.due.size;
  }
  /** Moves the clock by `ms`, firing what falls due (in time order, ties in the order set). */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const next = [...this.due].filter(([, d]) => d.at <= end).sort((a, b) => a[1].at - b[1].at || a[0] - b[0])[0];
      if (!next) break;
      this.due.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
  }
}

/** Lets promise callbacks and I/O already queued run (one turn of the event loop); no time passes on a ManualClock. */
export const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
