// Group commit for the API's writes: the units of work asked for in one turn of the event loop
// run in one IMMEDIATE transaction, so one disk flush (synchronous=FULL) serves them all instead of
// one each. Each unit still runs alone in its own savepoint, in arrival order (a unit sees the
// writes of the ones before it, as if they had been sequential); one that throws is undone alone
// and rejects alone. Every promise settles only after the COMMIT returned (the write is durable),
// and the stores' listeners hear of the committed units first, in order, one notification per
// write as transact() delivers them. The mail relay's writer groups its commits the same way
// (src/mail/queue/messages.ts, soon()).
import { logger } from '../log/index.js';
import type { Db } from './db.js';
import type { Notifying } from './simulate.js';

export interface GroupCommitOptions {
  /** How the flush is put off until the turn's writes are in; default setImmediate (after this turn's I/O callbacks). */
  defer?: (flush: () => void) => void;
  /** While it returns a promise, writing must wait (another connection holds the records' turn: a zone import); the flush awaits it. */
  ready?: () => Promise<void> | null;
  /** Called after each COMMIT, before anyone is told (tests count and look at what was committed). */
  committed?: (units: number) => void;
  /** Called when a unit joins the next group, with how many wait now (tests wait for a group to fill). */
  queued?: (waiting: number) => void;
}

interface Pending {
  fn: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; err: unknown };

export class GroupCommit {
  /** Transactions committed, units committed in them, units that failed alone (tests and the bench read them). */
  readonly counts = { commits: 0, units: 0, failed: 0 };
  private pending: Pending[] = [];
  private scheduled = false;
  /** Runs one unit in a savepoint of the group's transaction (one wrapper, made once). */
  private readonly savepoint: (fn: () => unknown) => unknown;
  private readonly log = logger('store.group');

  constructor(
    private readonly db: Db,
    private readonly stores: readonly Notifying[],
    private readonly o: GroupCommitOptions = {},
  ) {
    this.savepoint = db.transaction((fn: () => unknown) => fn());
  }

  /** Runs `fn` (its checks and writes) in the next group's transaction; resolves with what it returned once that committed. */
  run<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ fn, resolve: resolve as (value: unknown) => void, reject });
      this.o.queued?.(this.pending.length);
      if (this.scheduled) return;
      this.scheduled = true;
      (this.o.defer ?? setImmediate)(() => this.flush());
    });
  }

  /** Units waiting for the next commit. */
  get waiting(): number {
    return this.pending.length;
  }

  private flush(): void {
    const wait = this.o.ready?.();
    if (wait) {
      // Units that come meanwhile join this group, after the ones already waiting.
      void wait.then(
        () => this.flush(),
        () => this.flush(),
      );
      return;
    }
    this.scheduled = false;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    const held: (() => void)[] = [];
    const outcomes: Outcome[] = [];
    this.stores.forEach((s) => (s.held = held));
    try {
      this.db
        .transaction(() => {
          for (const p of batch) {
            // A failed unit's savepoint is rolled back: so are the notifications it queued.
            const mark = held.length;
            try {
              outcomes.push({ ok: true, value: this.savepoint(p.fn) });
            } catch (err) {
              held.length = mark;
              outcomes.push({ ok: false, err });
            }
          }
        })
        .immediate();
    } catch (err) {
      // BEGIN or COMMIT failed (disk full, SQLITE_BUSY past the timeout): nothing of the group was written.
      for (const p of batch) p.reject(err);
      return;
    } finally {
      this.stores.forEach((s) => (s.held = null));
    }
    const ok = outcomes.filter((r) => r.ok).length;
    this.counts.commits++;
    this.counts.units += ok;
    this.counts.failed += batch.length - ok;
    this.o.committed?.(ok);
    for (const call of held)
      try {
        call();
      } catch (err) {
        // A listener's failure is not the writer's: the write is committed and its reply says so.
        this.log.error('a change listener failed after a commit', { error: (err as Error).message });
      }
    batch.forEach((p, i) => {
      const r = outcomes[i]!;
      if (r.ok) p.resolve(r.value);
      else p.reject(r.err);
    });
  }
}
