// Retention: the controller's minute job deletes exactly the final messages queued before
// now - mail_retention_days, with their delivery logs and unused bodies (injected clock).
import { expect } from 'chai';
import { MessageStore, PURGE_BATCH, purgeBefore } from '../../src/mail/queue/messages.js';
import { apiFixture, type ApiFixture } from '../helpers/api.js';

const DAY = 86_400_000;

describe('mail: retention', () => {
  let f: ApiFixture;
  let clock = 0;
  afterEach(async () => f.close());

  const count = (table: string) => f.db.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number;

  it('deletes exactly the final messages older than the retention, with their logs and unused bodies; never a pending one', async () => {
    const now = 1_800_000_000_000;
    clock = now;
    f = await apiFixture({ now: () => clock, retentionDays: 30 });
    const store = new MessageStore(f.db);
    const put = (ageMs: number, status: string) => {
      const [id] = store.enqueue({ account: 'app', mailFrom: 'app@example.com', rcptTo: ['a@example.org'], raw: Buffer.from(`Subject: ${ageMs} ${status}\r\n\r\nx`) }, now - ageMs);
      f.db.prepare('UPDATE mail_messages SET status = ? WHERE id = ?').run(status, id);
      f.db.prepare("INSERT INTO mail_deliveries (message_id, at_ms, provider, outcome, code, response, duration_ms) VALUES (?, ?, 'p', 'delivered', 250, 'ok', 1)").run(id, now - ageMs);
      return id!;
    };
    const gone = [put(30 * DAY + 1, 'delivered'), put(40 * DAY, 'bounced'), put(31 * DAY, 'failed')];
    const kept = [put(30 * DAY, 'delivered'), put(29 * DAY, 'bounced'), put(60 * DAY, 'deferred'), put(60 * DAY, 'held'), put(60 * DAY, 'queued'), put(DAY, 'delivered')];
    expect(count('mail_deliveries')).to.equal(9);

    f.mail.tick();
    expect((f.db.prepare('SELECT id FROM mail_messages ORDER BY id').pluck().all())).to.deep.equal([...kept].sort());
    expect(count('mail_deliveries')).to.equal(kept.length);
    expect(count('mail_bodies')).to.equal(kept.length);
    for (const id of gone) expect((await f.app.inject({ method: 'GET', url: `/api/v1/mail/queue/${id}`, headers: f.auth })).statusCode).to.equal(404);

    // A day later, the one exactly at the limit is past it.
    clock = now + DAY;
    f.mail.tick();
    expect(f.db.prepare('SELECT id FROM mail_messages ORDER BY id').pluck().all()).to.not.include(kept[0]);
    expect(count('mail_messages')).to.equal(kept.length - 1);
  });

  it('0 keeps everything; the purge works in batches past PURGE_BATCH', async () => {
    clock = 1_800_000_000_000;
    f = await apiFixture({ now: () => clock, retentionDays: 0 });
    const store = new MessageStore(f.db);
    const n = PURGE_BATCH + 7;
    for (let i = 0; i < n; i++) store.enqueue({ account: 'app', mailFrom: 'app@example.com', rcptTo: ['a@example.org'], raw: Buffer.from(`Subject: ${i}\r\n\r\nx`) }, clock - 100 * DAY);
    f.db.prepare("UPDATE mail_messages SET status = 'delivered'").run();
    f.mail.tick();
    expect(count('mail_messages')).to.equal(n);
    expect(purgeBefore(f.db, clock - 30 * DAY)).to.equal(n);
    expect(count('mail_messages')).to.equal(0);
    expect(count('mail_bodies')).to.equal(0);
  });
});
