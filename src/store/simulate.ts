// Units of work over several stores: transact() commits a request's checks and writes together,
// simulate() (dry runs) performs them, looks at the result, then rolls everything back.
import type { Db } from './db.js';

/** Thrown to roll a simulate() transaction back; never escapes it. */
const ROLLBACK = new Error('rollback');

/** What transact() and simulate() need of a store: its change notifications can be dropped or held. */
export interface Notifying {
  /** Writes happen inside a transaction that will be rolled back: nobody is told. */
  muted: boolean;
  /** Writes happen inside an outer transaction: notifications wait here until it commits. */
  held: (() => void)[] | null;
}

/** Calls `call` now, later (after the outer transaction commits), or never (dry run). */
export function notify(store: Notifying, call: () => void): void {
  if (store.muted) return;
  if (store.held) store.held.push(call);
  else call();
}

/**
 * Runs `fn` in one IMMEDIATE transaction and returns what it returned. The stores' listeners hear
 * of its writes only once it committed, in the order the writes happened; when `fn` throws,
 * nothing is written and nobody is told.
 */
export function transact<T>(db: Db, stores: readonly Notifying[], fn: () => T): T {
  // Inside another unit of work: a savepoint; the outer one holds and delivers the notifications.
  if (stores.some((s) => s.held)) return db.transaction(fn)();
  const held: (() => void)[] = [];
  stores.forEach((s) => (s.held = held));
  let result: T;
  try {
    result = db.transaction(fn).immediate();
  } finally {
    stores.forEach((s) => (s.held = null));
  }
  for (const call of held) call();
  return result;
}

/**
 * Runs `fn` inside a transaction that is always rolled back, with the stores' listeners muted,
 * and returns what `fn` returned. Errors thrown by `fn` propagate (nothing was written either way).
 */
export function simulate<T>(db: Db, stores: readonly { muted: boolean }[], fn: () => T): T {
  let result: { value: T } | undefined;
  stores.forEach((s) => (s.muted = true));
  try {
    db.transaction(() => {
      result = { value: fn() };
      throw ROLLBACK;
    }).immediate();
  } catch (e) {
    if (e !== ROLLBACK) throw e;
  } finally {
    stores.forEach((s) => (s.muted = false));
  }
  return (result as { value: T }).value;
}
