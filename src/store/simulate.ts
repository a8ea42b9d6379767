// Dry runs: perform writes, look at the result, then roll everything back.
import type { Db } from './db.js';

const ROLLBACK = Symbol('rollback');

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
