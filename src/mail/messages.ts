// The queue in SQLite: message bodies, one message row per recipient domain, leases, and the
// delivery log. Contracts:
// - enqueue() commits body + rows in one transaction; the SMTP 250 goes out only after it returns.
// - claim() hands each due message to one owner until its lease ends; a holder that dies lets the
//   lease run out and the message is claimed again (at-least-once, never lost).
// - finish() records an attempt and the next state only while the caller still holds the lease.
import { randomBytes } from 'node:crypto';
import type { Db } from '../store/db.js';
import { domainOf, FINAL_STATUSES, messageRow, type Attempt, type Delivery, type Message, type MessageStatus } from './schema.js';

export interface NewMessage {
  account: string;
  mailFrom: string;
  rcptTo: readonly string[];
  raw: Buffer;
}

/** What the queue decided after an attempt (or without one: `held`). */
export interface NextState {
  status: Exclude<MessageStatus, 'queued' | 'sending'>;
  next_attempt_at: number;
  provider: string | null;
  last_error: string | null;
}

const newId = () => randomBytes(8).toString('hex');

export class MessageStore {
  constructor(
    private readonly db: Db,
    private readonly id: () => string = newId,
  ) {}

  /** Stores the body once and one queued message per recipient domain. Returns the message ids. */
  enqueue(m: NewMessage, nowMs: number): string[] {
    const byDomain = new Map<string, string[]>();
    for (const rcpt of m.rcptTo) {
      const d = domainOf(rcpt);
      byDomain.set(d, [...(byDomain.get(d) ?? []), rcpt]);
    }
    const bodyId = this.id();
    const insert = this.db.prepare(
      `INSERT INTO mail_messages (id, body_id, account, mail_from, rcpt_to, recipient_domain, size, status, created_at_ms, next_attempt_at, updated_at_ms)
       VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)`,
    );
    return this.db
      .transaction(() => {
        this.db.prepare('INSERT INTO mail_bodies (id, raw) VALUES (?, ?)').run(bodyId, m.raw);
        return [...byDomain].map(([domain, rcpts]) => {
          const id = this.id();
          insert.run(id, bodyId, m.account, m.mailFrom, JSON.stringify(rcpts), domain, m.raw.length, nowMs, nowMs, nowMs);
          return id;
        });
      })
      .immediate();
  }

  /** Leases up to `limit` due messages (queued/deferred and due, or sending with a lapsed lease) to `owner`. */
  claim(owner: string, limit: number, nowMs: number, leaseMs: number): Message[] {
    const rows = this.db
      .prepare(
        `UPDATE mail_messages SET status = 'sending', lease_owner = @owner, lease_until = @until, updated_at_ms = @now
         WHERE id IN (
           SELECT id FROM mail_messages
           WHERE (status IN ('queued', 'deferred') AND next_attempt_at <= @now) OR (status = 'sending' AND lease_until < @now)
           ORDER BY next_attempt_at LIMIT @limit)
         RETURNING *`,
      )
      .all({ owner, until: nowMs + leaseMs, now: nowMs, limit });
    return rows.map((r) => messageRow.parse(r));
  }

  /**
   * Ends now the leases of every owner `gone` says can never finish (a relay on this host that was
   * killed mid-delivery), so their messages are claimed at once instead of after the lease runs out.
   * Returns how many messages were released.
   */
  releaseLeases(gone: (owner: string) => boolean, nowMs: number): number {
    const owners = this.db.prepare(`SELECT DISTINCT lease_owner FROM mail_messages WHERE status = 'sending' AND lease_until >= ?`).pluck().all(nowMs) as (string | null)[];
    const end = this.db.prepare(`UPDATE mail_messages SET lease_until = ? WHERE status = 'sending' AND lease_owner = ?`);
    let released = 0;
    for (const owner of owners) if (owner !== null && gone(owner)) released += end.run(nowMs - 1, owner).changes;
    return released;
  }

  /** Extends `owner`'s leases on `ids` (a delivery still in flight). */
  renew(owner: string, ids: readonly string[], untilMs: number): void {
    const stmt = this.db.prepare(`UPDATE mail_messages SET lease_until = ? WHERE id = ? AND lease_owner = ? AND status = 'sending'`);
    this.db.transaction(() => ids.forEach((id) => stmt.run(untilMs, id, owner)))();
  }

  /** The raw message (headers + body) as accepted; undefined once purged. */
  body(bodyId: string): Buffer | undefined {
    return (this.db.prepare('SELECT raw FROM mail_bodies WHERE id = ?').get(bodyId) as { raw: Buffer } | undefined)?.raw;
  }

  /**
   * Logs `attempt` (if any) and moves the message to `next`, in one transaction, if `owner` still
   * holds its lease; returns false (and changes nothing) otherwise. A final status purges the body
   * once no other message of it is pending.
   */
  finish(id: string, owner: string, attempt: Attempt | null, next: NextState, nowMs: number): boolean {
    return this.db
      .transaction(() => {
        const changed = this.db
          .prepare(
            `UPDATE mail_messages SET status = ?, attempts = attempts + ?, next_attempt_at = ?, lease_until = NULL, lease_owner = NULL,
               provider = coalesce(?, provider), last_error = ?, updated_at_ms = ?
             WHERE id = ? AND lease_owner = ? AND status = 'sending'`,
          )
          .run(next.status, attempt ? 1 : 0, next.next_attempt_at, next.provider, next.last_error, nowMs, id, owner).changes;
        if (!changed) return false;
        if (attempt)
          this.db
            .prepare('INSERT INTO mail_deliveries (message_id, at_ms, provider, outcome, code, response, duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?)')
            .run(id, nowMs, attempt.provider, attempt.outcome, attempt.code, attempt.response, attempt.duration_ms);
        if (FINAL_STATUSES.has(next.status)) this.purgeBody(id);
        return true;
      })
      .immediate();
  }

  private purgeBody(id: string): void {
    const { body_id } = this.db.prepare('SELECT body_id FROM mail_messages WHERE id = ?').get(id) as { body_id: string | null };
    if (!body_id) return;
    const pending = this.db
      .prepare(`SELECT count(*) AS n FROM mail_messages WHERE body_id = ? AND status NOT IN (${[...FINAL_STATUSES].map(() => '?').join(', ')})`)
      .get(body_id, ...FINAL_STATUSES) as { n: number };
    if (pending.n) return;
    this.db.prepare('UPDATE mail_messages SET body_id = NULL WHERE body_id = ?').run(body_id);
    this.db.prepare('DELETE FROM mail_bodies WHERE id = ?').run(body_id);
  }

  get(id: string): Message | undefined {
    const row = this.db.prepare('SELECT * FROM mail_messages WHERE id = ?').get(id);
    return row === undefined ? undefined : messageRow.parse(row);
  }

  /** Newest first. */
  list(filter: { status?: MessageStatus; limit?: number } = {}): Message[] {
    const rows = filter.status
      ? this.db.prepare('SELECT * FROM mail_messages WHERE status = ? ORDER BY created_at_ms DESC, id LIMIT ?').all(filter.status, filter.limit ?? 100)
      : this.db.prepare('SELECT * FROM mail_messages ORDER BY created_at_ms DESC, id LIMIT ?').all(filter.limit ?? 100);
    return rows.map((r) => messageRow.parse(r));
  }

  /** The delivery log of one message, oldest first. */
  deliveries(messageId: string): Delivery[] {
    return this.db.prepare('SELECT * FROM mail_deliveries WHERE message_id = ? ORDER BY id').all(messageId) as Delivery[];
  }
}
