// The queue in SQLite: message bodies, one message row per recipient domain, leases, and the
// delivery log. Contracts:
// - enqueue() commits body + rows in one transaction; the SMTP 250 goes out only after it returns.
// - claim() hands each due message to one owner until its lease ends; a holder that dies lets the
//   lease run out and the message is claimed again (at-least-once, never lost).
// - finish()/settle() record an attempt, the next state, split-off recipients and DSNs in one
//   transaction, and only while the caller still holds the lease: a DSN is queued exactly when
//   its message becomes final.
import { randomInt } from 'node:crypto';
import { AppError } from '../../errors.js';
import { prepared, type Db } from '../../store/db.js';
import { domainOf, FINAL_STATUSES, messageRow, type Attempt, type Delivery, type Message, type MessageSource, type MessageStatus } from '../../model/mail.js';

export interface NewMessage {
  /** '' for inbound mail (no account). */
  account: string;
  mailFrom: string;
  rcptTo: readonly string[];
  raw: Buffer;
  /** Default `submission`. */
  source?: MessageSource;
}

/** What the queue decided after an attempt (or without one: `held`). */
export interface NextState {
  status: Exclude<MessageStatus, 'queued' | 'sending'>;
  next_attempt_at: number;
  provider: string | null;
  last_error: string | null;
}

/** One group of recipients after an attempt, as MessageStore.settle() records it. */
export interface Settled {
  attempt: Attempt | null;
  next: NextState;
  /** The recipients this message keeps; unset: all of them. */
  rcpt_to?: string[];
  /** A DSN to queue back to the sender (src/mail/delivery/dsn.ts). */
  dsn?: Buffer;
}

/**
 * A maker of message and body ids: 16 hex characters, the time in ms (11) then a counter (5) that
 * starts at a random value each millisecond. Ids made one after another sort together, so the
 * primary-key and body_id indexes grow at their end and the inserts of one commit share index
 * pages; random ids put every insert on index pages of its own (bench/mail: 18–23 KiB written to
 * disk per accepted message, WAL and checkpoints, against 10 with these). One maker never makes
 * the same id twice: the counter goes on, past the millisecond if it must, and a clock that steps
 * back changes nothing. The relay makes every queue id on its writer thread; another maker (the
 * CLI, a test) clashes only on the same millisecond and counter, and that insert then fails alone
 * (its savepoint), never silently.
 */
export function idMaker(now: () => number = Date.now, random: (below: number) => number = (n) => randomInt(n)): () => string {
  let ms = 0;
  let seq = 0;
  return () => {
    const t = now();
    if (t > ms) [ms, seq] = [t, random(0x80000)];
    else if (++seq > 0xfffff) [ms, seq] = [ms + 1, random(0x80000)];
    return ms.toString(16).padStart(11, '0') + seq.toString(16).padStart(5, '0');
  };
}

/** This thread's maker: every MessageStore here shares it. */
const newId = idMaker();

export class MessageStore {
  constructor(
    private readonly db: Db,
    private readonly id: () => string = newId,
  ) {}

  /** Stores the body once and one queued message per recipient domain, committed before it returns. Returns the message ids. */
  enqueue(m: NewMessage, nowMs: number): string[] {
    return this.db.transaction(() => this.insert(m, nowMs)).immediate();
  }

  /**
   * enqueue() for the SMTP path (group commit, soon()): the 250 follows the commit, which the
   * other messages and attempts of the same event-loop turn share.
   */
  enqueueSoon(m: NewMessage, nowMs: number): Promise<string[]> {
    return this.soon(() => this.insert(m, nowMs));
  }

  /** claim() for the delivery workers, grouped like enqueueSoon(). */
  claimSoon(owner: string, limit: number, nowMs: number, leaseMs: number): Promise<Message[]> {
    return this.soon(() => this.claim(owner, limit, nowMs, leaseMs));
  }

  /** settle() for the delivery workers, grouped like enqueueSoon(). */
  settleSoon(id: string, owner: string, self: Settled, splits: readonly (Settled & { rcpt_to: string[]; attempt: Attempt })[], nowMs: number): Promise<boolean> {
    return this.soon(() => this.settleIn(id, owner, self, splits, nowMs));
  }

  /**
   * Group commit: the writes asked for in one turn of the event loop run in one transaction, so
   * one disk flush (~0.35 ms here) serves them all instead of one each. Each write runs in its own
   * savepoint (a failing one is undone alone and rejects alone); every promise settles only after
   * the commit.
   */
  private soon<T>(write: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ write, resolve: resolve as (v: unknown) => void, reject });
      if (this.pending.length === 1) setImmediate(() => this.flush());
    });
  }

  private pending: { write: () => unknown; resolve: (v: unknown) => void; reject: (err: unknown) => void }[] = [];

  /** Runs a write in a savepoint of the batch's transaction (one wrapper, made once: making one per write showed in the writer's profile). */
  private savepoint?: (write: () => unknown) => unknown;

  private flush(): void {
    const batch = this.pending;
    this.pending = [];
    const savepoint = (this.savepoint ??= this.db.transaction((write: () => unknown) => write()));
    let results: ({ ok: true; value: unknown } | { ok: false; err: unknown })[];
    try {
      results = this.db.transaction(() =>
        batch.map((p) => {
          try {
            return { ok: true as const, value: savepoint(p.write) };
          } catch (err) {
            return { ok: false as const, err };
          }
        }),
      ).immediate();
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    batch.forEach((p, i) => {
      const r = results[i]!;
      if (r.ok) p.resolve(r.value);
      else p.reject(r.err);
    });
  }

  /** Inside a transaction: the body row and one message row per recipient domain. */
  private insert(m: NewMessage, nowMs: number): string[] {
    const byDomain = new Map<string, string[]>();
    for (const rcpt of m.rcptTo) {
      const d = domainOf(rcpt);
      const list = byDomain.get(d);
      if (list) list.push(rcpt);
      else byDomain.set(d, [rcpt]);
    }
    const bodyId = this.id();
    prepared(this.db, 'INSERT INTO mail_bodies (id, raw) VALUES (?, ?)').run(bodyId, m.raw);
    const insert = prepared(
      this.db,
      `INSERT INTO mail_messages (id, body_id, account, mail_from, rcpt_to, recipient_domain, size, status, created_at_ms, next_attempt_at, updated_at_ms, source)
       VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)`,
    );
    return [...byDomain].map(([domain, rcpts]) => {
      const id = this.id();
      insert.run(id, bodyId, m.account, m.mailFrom, JSON.stringify(rcpts), domain, m.raw.length, nowMs, nowMs, nowMs, m.source ?? 'submission');
      return id;
    });
  }

  /** Leases up to `limit` due messages (queued/deferred and due, or sending with a lapsed lease) to `owner`. */
  claim(owner: string, limit: number, nowMs: number, leaseMs: number): Message[] {
    // One indexed, limited pick per status (index status, next_attempt_at): an OR over the statuses
    // made SQLite sort the whole due backlog on every claim (0.76 ms at 5,000 waiting, vs 0.008).
    const claim = prepared(
      this.db,
      `UPDATE mail_messages SET status = 'sending', lease_owner = @owner, lease_until = @until, updated_at_ms = @now
       WHERE id IN (
         SELECT id FROM (
           SELECT id, next_attempt_at FROM (SELECT id, next_attempt_at FROM mail_messages WHERE status = 'queued' AND next_attempt_at <= @now ORDER BY next_attempt_at LIMIT @limit)
           UNION ALL
           SELECT id, next_attempt_at FROM (SELECT id, next_attempt_at FROM mail_messages WHERE status = 'deferred' AND next_attempt_at <= @now ORDER BY next_attempt_at LIMIT @limit)
           UNION ALL
           SELECT id, next_attempt_at FROM (SELECT id, next_attempt_at FROM mail_messages WHERE status = 'sending' AND lease_until < @now ORDER BY next_attempt_at LIMIT @limit))
         ORDER BY next_attempt_at LIMIT @limit)
       RETURNING *`,
    );
    const rows = claim.all({ owner, until: nowMs + leaseMs, now: nowMs, limit });
    return rows.map((r) => messageRow.parse(r));
  }

  /**
   * Ends now the leases of every owner `gone` says can never finish (a relay on this host that was
   * killed mid-delivery), so their messages are claimed at once instead of after the lease runs out.
   * Returns how many messages were released.
   */
  releaseLeases(gone: (owner: string) => boolean, nowMs: number): number {
    const owners = this.db.prepare(`SELECT DISTINCT lease_owner FROM mail_messages WHERE status = 'sending' AND lease_until >= ?`).pluck().all(nowMs) as (string | null)[];
    const end = prepared(this.db, `UPDATE mail_messages SET lease_until = ? WHERE status = 'sending' AND lease_owner = ?`);
    let released = 0;
    for (const owner of owners) if (owner !== null && gone(owner)) released += end.run(nowMs - 1, owner).changes;
    return released;
  }

  /** Extends `owner`'s leases on `ids` (a delivery still in flight). */
  renew(owner: string, ids: readonly string[], untilMs: number): void {
    const stmt = prepared(this.db, `UPDATE mail_messages SET lease_until = ? WHERE id = ? AND lease_owner = ? AND status = 'sending'`);
    this.db.transaction(() => ids.forEach((id) => stmt.run(untilMs, id, owner)))();
  }

  /** The raw message (headers + body) as accepted; undefined once purged. */
  body(bodyId: string): Buffer | undefined {
    return (prepared(this.db, 'SELECT raw FROM mail_bodies WHERE id = ?').get(bodyId) as { raw: Buffer } | undefined)?.raw;
  }

  /**
   * Logs `attempt` (if any) and moves the message to `next`, in one transaction, if `owner` still
   * holds its lease; returns false (and changes nothing) otherwise. A final status purges the body
   * once no other message of it is pending.
   */
  finish(id: string, owner: string, attempt: Attempt | null, next: NextState, nowMs: number): boolean {
    return this.settle(id, owner, { attempt, next }, [], nowMs);
  }

  /**
   * finish() for an attempt whose recipients ended differently (policy.ts settle()): the message
   * keeps `self.rcpt_to` (all of them when unset) and `self.next`; each of `splits` becomes a new
   * message on the same body with its own recipients, state and first log row, `attempts` and
   * `created_at_ms` carried over (so its give-up time stays). Each `dsn` given is queued as a new
   * message from `<>` to this message's sender. All in one transaction, only while `owner` still
   * holds the lease; returns false (and changes nothing) otherwise.
   */
  settle(id: string, owner: string, self: Settled, splits: readonly (Settled & { rcpt_to: string[]; attempt: Attempt })[], nowMs: number): boolean {
    return this.db.transaction(() => this.settleIn(id, owner, self, splits, nowMs)).immediate();
  }

  /** settle() inside the caller's transaction. */
  private settleIn(id: string, owner: string, self: Settled, splits: readonly (Settled & { rcpt_to: string[]; attempt: Attempt })[], nowMs: number): boolean {
    const updated = prepared(
      this.db,
      `UPDATE mail_messages SET status = ?, attempts = attempts + ?, next_attempt_at = ?, lease_until = NULL, lease_owner = NULL,
         provider = coalesce(?, provider), last_error = ?, updated_at_ms = ?, rcpt_to = coalesce(?, rcpt_to)
       WHERE id = ? AND lease_owner = ? AND status = 'sending' RETURNING body_id`,
    ).get(self.next.status, self.attempt ? 1 : 0, self.next.next_attempt_at, self.next.provider, self.next.last_error, nowMs, self.rcpt_to ? JSON.stringify(self.rcpt_to) : null, id, owner) as { body_id: string | null } | undefined;
    if (!updated) return false;
    this.log(id, self.attempt, nowMs);
    if (self.next.status === 'bounced' || splits.some((s) => s.next.status === 'bounced')) {
      const m = this.get(id)!;
      if (m.mail_from !== '') {
        this.suppressHardBounce(self.next.status, self.attempt, m.rcpt_to, nowMs);
        for (const s of splits) this.suppressHardBounce(s.next.status, s.attempt, s.rcpt_to, nowMs);
      }
    }
    if (self.dsn || splits.length) {
      const parent = this.get(id)!;
      if (self.dsn) this.queueDsn(parent, id, self.dsn, nowMs);
      for (const s of splits) {
        const splitId = this.id();
        prepared(
          this.db,
          `INSERT INTO mail_messages (id, body_id, account, mail_from, rcpt_to, recipient_domain, size, status, attempts, created_at_ms, next_attempt_at, provider, last_error, updated_at_ms, parent_id, source)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        ).run(splitId, parent.body_id, parent.account, parent.mail_from, JSON.stringify(s.rcpt_to), parent.recipient_domain, parent.size, s.next.status, parent.attempts, parent.created_at_ms, s.next.next_attempt_at, s.next.provider, s.next.last_error, nowMs, id, parent.source);
        this.log(splitId, s.attempt, nowMs);
        if (s.dsn) this.queueDsn(parent, splitId, s.dsn, nowMs);
      }
    }
    if (FINAL_STATUSES.has(self.next.status) && updated.body_id) this.purgeBody(updated.body_id);
    return true;
  }

  /**
   * A hard bounce (bounced with a 5.1.x status: no such mailbox or domain) suppresses its
   * recipients, so the relay refuses them at RCPT TO from then on. Other bounces (size, policy,
   * a refused host) do not: the address may well exist. DSNs (sender `<>`) suppress nothing.
   */
  private suppressHardBounce(status: string, attempt: Attempt | null, rcpts: readonly string[], nowMs: number): void {
    if (status !== 'bounced' || !attempt || !HARD_BOUNCE.test(attempt.response)) return;
    const put = prepared(this.db, "INSERT INTO mail_suppressions (address, source, reason, created_at) VALUES (?, 'bounce', ?, ?) ON CONFLICT (address) DO NOTHING");
    for (const r of rcpts) put.run(r.toLowerCase(), attempt.response.slice(0, 500), new Date(nowMs).toISOString());
  }

  private log(id: string, attempt: Attempt | null, nowMs: number): void {
    if (attempt)
      prepared(this.db, 'INSERT INTO mail_deliveries (message_id, at_ms, provider, outcome, code, response, duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(id, nowMs, attempt.provider, attempt.outcome, attempt.code, attempt.response, attempt.duration_ms);
  }

  /** Queues `raw` from `<>` to `about`'s sender, routed as mail of the sender's account (outgoing: source `submission`, also for inbound mail). */
  private queueDsn(about: Message, aboutId: string, raw: Buffer, nowMs: number): void {
    const bodyId = this.id();
    prepared(this.db, 'INSERT INTO mail_bodies (id, raw) VALUES (?, ?)').run(bodyId, raw);
    prepared(
      this.db,
      `INSERT INTO mail_messages (id, body_id, account, mail_from, rcpt_to, recipient_domain, size, status, created_at_ms, next_attempt_at, updated_at_ms, parent_id)
       VALUES (?, ?, ?, '', ?, ?, ?, 'queued', ?, ?, ?, ?)`,
    )
    .run(this.id(), bodyId, about.account, JSON.stringify([about.mail_from]), domainOf(about.mail_from), raw.length, nowMs, nowMs, nowMs, aboutId);
  }

  /** Deletes body `body_id` once no message on it is pending (split-off messages share it). */
  private purgeBody(body_id: string): void {
    const pending = prepared(this.db, `SELECT 1 FROM mail_messages WHERE body_id = ? AND status NOT IN (${[...FINAL_STATUSES].map(() => '?').join(', ')}) LIMIT 1`).get(body_id, ...FINAL_STATUSES);
    if (pending) return;
    prepared(this.db, 'UPDATE mail_messages SET body_id = NULL WHERE body_id = ?').run(body_id);
    prepared(this.db, 'DELETE FROM mail_bodies WHERE id = ?').run(body_id);
  }

  get(id: string): Message | undefined {
    const row = prepared(this.db, 'SELECT * FROM mail_messages WHERE id = ?').get(id);
    return row === undefined ? undefined : messageRow.parse(row);
  }

  /** Newest first. */
  list(filter: { status?: MessageStatus; account?: string; limit?: number } = {}): Message[] {
    // NULL parameters match everything: one statement for every filter combination.
    const rows = prepared(this.db, 'SELECT * FROM mail_messages WHERE (@status IS NULL OR status = @status) AND (@account IS NULL OR account = @account) ORDER BY created_at_ms DESC, id LIMIT @limit').all({
      status: filter.status ?? null,
      account: filter.account ?? null,
      limit: filter.limit ?? 100,
    });
    return rows.map((r) => messageRow.parse(r));
  }

  /** The delivery log of one message, oldest first. */
  deliveries(messageId: string): Delivery[] {
    return prepared(this.db, 'SELECT * FROM mail_deliveries WHERE message_id = ? ORDER BY id').all(messageId) as Delivery[];
  }

  // ---- operator actions (API, CLI) ----

  /**
   * Applies an operator's action (see operatorAction()) in one write transaction, so a relay's
   * claim of the same message lands entirely before or after it. Returns the message as it is now.
   * Throws AppError not_found (unknown id) or conflict (in flight or final).
   */
  operate(id: string, action: OperatorAction, nowMs: number): Message {
    return this.db
      .transaction(() => {
        const m = this.get(id);
        if (!m) throw new AppError('not_found', `no message ${id}`);
        const to = operatorAction(m, action, nowMs);
        if (typeof to === 'string') throw new AppError('conflict', `message ${id}: ${to}`);
        prepared(this.db, `UPDATE mail_messages SET status = ?, next_attempt_at = ?, lease_owner = NULL, lease_until = NULL, updated_at_ms = ? WHERE id = ?`)
          .run(to.status, to.next_attempt_at, nowMs, id);
        return this.get(id)!;
      })
      .immediate();
  }

  /**
   * Deletes a message that is not being delivered, with its delivery log, and its body when no
   * other message uses it. Messages split from it or DSNs about it stay (their parent_id dangles).
   * Throws AppError not_found or conflict (in flight).
   */
  delete(id: string, nowMs: number): void {
    this.db
      .transaction(() => {
        const m = this.get(id);
        if (!m) throw new AppError('not_found', `no message ${id}`);
        if (inFlight(m, nowMs)) throw new AppError('conflict', `message ${id}: ${IN_FLIGHT}`);
        prepared(this.db, 'DELETE FROM mail_deliveries WHERE message_id = ?').run(id);
        prepared(this.db, 'DELETE FROM mail_messages WHERE id = ?').run(id);
        if (m.body_id && !prepared(this.db, 'SELECT 1 FROM mail_messages WHERE body_id = ? LIMIT 1').get(m.body_id))
          prepared(this.db, 'DELETE FROM mail_bodies WHERE id = ?').run(m.body_id);
      })
      .immediate();
  }
}

export type OperatorAction = 'retry' | 'hold' | 'release';

/** RFC 3463 §3.2: 5.1.x are addressing failures (no such mailbox, domain, bad syntax): a hard bounce. */
const HARD_BOUNCE = /(^|\s)5\.1\.\d{1,3}(\s|$)/;

/** Messages purged per transaction: the relay's writer waits for each, so each stays short. */
export const PURGE_BATCH = 500;

/**
 * Retention: deletes the final messages (delivered, bounced, failed) queued before `cutoffMs`,
 * their delivery logs, and bodies no message uses any more, in batches of PURGE_BATCH (one
 * transaction each). A message still queued, deferred, held or sending is never deleted, however
 * old. Returns how many messages went.
 */
export function purgeBefore(db: Db, cutoffMs: number): number {
  const pick = prepared(db, "SELECT id, body_id FROM mail_messages WHERE created_at_ms < ? AND status IN ('delivered', 'bounced', 'failed') ORDER BY created_at_ms LIMIT ?");
  const delLog = prepared(db, 'DELETE FROM mail_deliveries WHERE message_id = ?');
  const delMsg = prepared(db, 'DELETE FROM mail_messages WHERE id = ?');
  const used = prepared(db, 'SELECT 1 FROM mail_messages WHERE body_id = ? LIMIT 1');
  const delBody = prepared(db, 'DELETE FROM mail_bodies WHERE id = ?');
  let total = 0;
  for (;;) {
    const n = db
      .transaction(() => {
        const rows = pick.all(cutoffMs, PURGE_BATCH) as { id: string; body_id: string | null }[];
        for (const r of rows) {
          delLog.run(r.id);
          delMsg.run(r.id);
          if (r.body_id && !used.get(r.body_id)) delBody.run(r.body_id);
        }
        return rows.length;
      })
      .immediate();
    total += n;
    if (n < PURGE_BATCH) return total;
  }
}

const IN_FLIGHT = 'a delivery attempt is in flight; try again in a moment';

/** A relay holds the message's lease now (one whose lease lapsed is waiting to be claimed again). */
const inFlight = (m: Pick<Message, 'status' | 'lease_until'>, nowMs: number) => m.status === 'sending' && (m.lease_until ?? 0) >= nowMs;

/**
 * The state an operator's action moves a message to, or why it cannot. Pure.
 *
 *   action    from                                            to
 *   retry     queued, deferred, held, sending (lease lapsed)  queued, due now
 *   hold      queued, deferred, sending (lease lapsed)        held (the relay skips it)
 *   hold      held                                            held (no change)
 *   release   held                                            queued, due now
 *   any       sending (lease held)                            refused: in flight
 *   any       delivered, bounced, failed                      refused: final (the body is gone)
 *   release   anything else                                   refused: not held
 *
 * A retried or released message keeps its attempts and give-up time: one retried after
 * mail_give_up_ms gets one more attempt and then fails.
 */
export function operatorAction(m: Pick<Message, 'status' | 'lease_until' | 'next_attempt_at'>, action: OperatorAction, nowMs: number): { status: 'queued' | 'held'; next_attempt_at: number } | string {
  if (inFlight(m, nowMs)) return IN_FLIGHT;
  if (FINAL_STATUSES.has(m.status)) return `it is ${m.status}, which is final (its body is no longer kept)`;
  if (action === 'release' && m.status !== 'held') return `it is ${m.status}, not held`;
  if (action === 'hold') return { status: 'held', next_attempt_at: m.next_attempt_at };
  return { status: 'queued', next_attempt_at: nowMs };
}
