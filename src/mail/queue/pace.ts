// Accepting comes first. While the relay is taking a burst of mail in (at least BURST_MESSAGES
// committed within the last ACCEPT_WINDOW_MS) and the machine is busy (less than BUSY_IDLE of its
// CPU time idle over the last sample), the delivery thread starts no new deliveries: the ones in flight finish, and a
// claim waits PAUSE_STEP_MS at a time, but never longer than MAX_PAUSE_MS after the last one, so
// delivery keeps going at a reduced pace however long the load lasts. The same idea as Exim's
// queue_only_load, at a tenth of a second instead of the load average: an SMTP client waits on
// every reply, a queued message waits for nobody. On an idle box, or between bursts, nothing
// waits. Where /proc/stat cannot be read (not Linux), nothing waits either.
import { readFileSync } from 'node:fs';

export const ACCEPT_WINDOW_MS = 250;
/** Messages within ACCEPT_WINDOW_MS that make a burst (80/s): a trickle never holds delivery back, however busy the machine is with other work. */
export const BURST_MESSAGES = 20;
/** Below this fraction of idle CPU time (all cores) the machine counts as busy. */
export const BUSY_IDLE = 0.3;
export const PAUSE_STEP_MS = 100;
export const MAX_PAUSE_MS = 1000;
/** The idle fraction is sampled at most this often; between samples the last one holds. */
const SAMPLE_MS = 50;

/** Idle and total CPU time of all cores (Linux /proc/stat, clock ticks), or undefined. */
export function cpuTimes(read = () => readFileSync('/proc/stat', 'latin1')): { idle: number; total: number } | undefined {
  try {
    const fields = read().slice(0, 200).split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    if (fields.length < 5 || fields.some((n) => !Number.isFinite(n))) return undefined;
    return { idle: fields[3]! + fields[4]!, total: fields.reduce((a, b) => a + b, 0) }; // idle + iowait
  } catch {
    return undefined;
  }
}

export class Pace {
  /** Commits within the window: when, and how many messages. */
  private recent: { at: number; n: number }[] = [];
  private lastGo = -Infinity;
  private sample?: { at: number; idle: number; total: number };
  private idleShare = 1;

  constructor(private readonly times: () => { idle: number; total: number } | undefined = cpuTimes) {}

  /** `n` messages were just committed (the writer's wake). */
  accepted(nowMs: number, n: number): void {
    this.recent.push({ at: nowMs, n });
  }

  private burst(nowMs: number): boolean {
    while (this.recent.length && nowMs - this.recent[0]!.at >= ACCEPT_WINDOW_MS) this.recent.shift();
    return this.recent.reduce((sum, r) => sum + r.n, 0) >= BURST_MESSAGES;
  }

  /** How long the next claim should wait (0: claim now). */
  delayMs(nowMs: number): number {
    const busy = this.busy(nowMs); // sampled on every call, so it tells how the machine is now
    const wait = busy && nowMs - this.lastGo < MAX_PAUSE_MS && this.burst(nowMs);
    if (!wait) {
      this.lastGo = nowMs;
      return 0;
    }
    return Math.min(PAUSE_STEP_MS, MAX_PAUSE_MS - (nowMs - this.lastGo));
  }

  private busy(nowMs: number): boolean {
    if (!this.sample || nowMs - this.sample.at >= SAMPLE_MS) {
      const t = this.times();
      if (!t) return false;
      if (this.sample && t.total > this.sample.total) this.idleShare = (t.idle - this.sample.idle) / (t.total - this.sample.total);
      this.sample = { at: nowMs, ...t };
    }
    return this.idleShare < BUSY_IDLE;
  }
}
