// The relay's heartbeat: the relay (its own process) writes one row every HEARTBEAT_MS, the
// controller reads it for the `mail` component of /health. Both sides share the SQLite file; each
// write is one statement (its own short transaction). mailHealth() is pure.
import type { Db } from '../store/db.js';

/** How often the relay writes its heartbeat. */
export const HEARTBEAT_MS = 5000;
/** Six missed beats: the relay is stopped, hung, or cannot write the database. */
export const HEARTBEAT_STALE_MS = 30_000;

export interface Heartbeat {
  /** The relay process (Queue.owner: host:pid:nonce). */
  owner: string;
  started_at_ms: number;
  at_ms: number;
  /** Set by a clean stop; null while the relay runs. */
  stopped_at_ms: number | null;
}

/** Records that `owner` is alive at `nowMs` (a new owner replaces the previous relay's row). */
export function writeHeartbeat(db: Db, owner: string, startedAtMs: number, nowMs: number): void {
  db.prepare(
    `INSERT INTO mail_relay_heartbeat (id, owner, started_at_ms, at_ms, stopped_at_ms) VALUES (1, ?, ?, ?, NULL)
     ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, started_at_ms = excluded.started_at_ms, at_ms = excluded.at_ms, stopped_at_ms = NULL`,
  ).run(owner, startedAtMs, nowMs);
}

/** Records a clean stop of `owner`; a row another relay wrote since is left alone. */
export function writeStopped(db: Db, owner: string, nowMs: number): void {
  db.prepare('UPDATE mail_relay_heartbeat SET stopped_at_ms = ?, at_ms = ? WHERE id = 1 AND owner = ?').run(nowMs, nowMs, owner);
}

export function readHeartbeat(db: Db): Heartbeat | undefined {
  return db.prepare('SELECT owner, started_at_ms, at_ms, stopped_at_ms FROM mail_relay_heartbeat WHERE id = 1').get() as Heartbeat | undefined;
}

export interface MailHealth {
  status: 'ok' | 'degraded' | 'disabled';
  detail: string;
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * The `mail` component of /health:
 *
 *   mail accounts   heartbeat                          status     why
 *   none            any                                disabled   nothing may submit mail: the relay has no work
 *   some            never written                      degraded   the relay never ran on this data dir
 *   some            stopped_at_ms set                  degraded   the relay was stopped (cleanly)
 *   some            older than staleMs                 degraded   the relay died, hangs, or cannot write
 *   some            fresh                              ok
 */
export function mailHealth(accounts: number, hb: Heartbeat | undefined, nowMs: number, staleMs = HEARTBEAT_STALE_MS): MailHealth {
  if (accounts === 0) return { status: 'disabled', detail: 'no mail account: add one with dnsproxy mail account add' };
  if (!hb) return { status: 'degraded', detail: 'the mail relay has never run on this data dir (start dnsproxy mail serve)' };
  if (hb.stopped_at_ms !== null) return { status: 'degraded', detail: `the mail relay stopped at ${iso(hb.stopped_at_ms)}` };
  const age = nowMs - hb.at_ms;
  if (age > staleMs) return { status: 'degraded', detail: `no heartbeat from the mail relay for ${Math.round(age / 1000)} s (last at ${iso(hb.at_ms)})` };
  return { status: 'ok', detail: `relay up since ${iso(hb.started_at_ms)}` };
}

/** mailHealth() from the shared database, as the controller sees it. Throws when the database cannot be read. */
export function mailComponent(db: Db, nowMs: number, staleMs = HEARTBEAT_STALE_MS): MailHealth {
  const { n } = db.prepare('SELECT count(*) AS n FROM mail_accounts').get() as { n: number };
  return mailHealth(n, readHeartbeat(db), nowMs, staleMs);
}
