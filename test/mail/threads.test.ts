// The relay's queue threads (src/mail/queue/queue-threads.ts) on their own: a writer and a delivery
// thread on a real data dir. A message is committed before enqueueSoon() resolves, and it is
// claimed by the delivery thread; a thread that cannot start fails start() with its reason and
// leaves nothing running.
import { expect } from 'chai';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { logLevel } from '../../src/log/index.js';
import { ThreadedDelivery } from '../../src/mail/queue/queue-threads.js';
import { MessageStore } from '../../src/mail/queue/messages.js';
import { openDb } from '../../src/store/db.js';
import { tempDir } from '../helpers/tmp.js';
import { eventually } from './helpers.js';

const setup = (dataDir: string, pollMs = 50) => ({
  dataDir,
  hostname: 'relay.example.net',
  logLevel: logLevel(),
  queue: { workers: 2, leaseMs: 60_000, pollMs, retry: { baseMs: 50, maxMs: 100, giveUpMs: 60_000 }, fallbackAfter: 2, drainMs: 1000 },
});

describe('mail: queue threads', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => (tmp = tempDir('dnsproxy-threads-')));
  afterEach(() => tmp.cleanup());

  it('commits a message before enqueueSoon() resolves, and the delivery thread takes it (no rule: deferred with the reason)', async () => {
    const db = openDb(tmp.dir);
    const fatal: Error[] = [];
    const d = await ThreadedDelivery.start(setup(tmp.dir), (e) => fatal.push(e));
    try {
      expect(d.owner).to.match(/:\d+:[0-9a-f]+$/);
      const ids = await Promise.all([1, 2, 3].map((i) => d.enqueueSoon({ account: 'app', mailFrom: 'app@example.com', rcptTo: [`u${i}@example.org`], raw: Buffer.from(`Subject: ${i}\r\n\r\nhi`) }, Date.now())));
      const messages = new MessageStore(db);
      for (const [id] of ids) expect(messages.get(id!), 'committed when the promise resolved').to.not.equal(undefined);
      const m = await eventually(() => messages.get(ids[0]![0]!)?.status === 'deferred' && messages.get(ids[0]![0]!), 5000, 'attempted');
      expect(m && m.last_error).to.match(/no routing rule/);
      expect(messages.deliveries(ids[0]![0]!)).to.have.length(1);
    } finally {
      await d.stop();
      await d.close();
      db.close();
    }
    expect(fatal).to.deep.equal([]);
  });

  it('the writer wakes the delivery thread after a commit: a new message is taken at once, not at the next poll', async () => {
    const db = openDb(tmp.dir);
    const d = await ThreadedDelivery.start(setup(tmp.dir, 60_000), () => undefined);
    try {
      await new Promise((r) => setTimeout(r, 300)); // the delivery thread's first look at the (empty) queue is over
      const [id] = await d.enqueueSoon({ account: 'app', mailFrom: 'app@example.com', rcptTo: ['u@example.org'], raw: Buffer.from('Subject: w\r\n\r\nhi') }, Date.now());
      const messages = new MessageStore(db);
      await eventually(() => messages.get(id!)?.status === 'deferred', 3000, 'an attempt long before the 60 s poll');
    } finally {
      await d.stop();
      await d.close();
      db.close();
    }
  });

  it('a message of a batch whose write fails is refused alone: the others of the same batch are committed and get their ids', async () => {
    const db = openDb(tmp.dir);
    const d = await ThreadedDelivery.start(setup(tmp.dir), () => undefined);
    try {
      const message = (account: unknown) => ({ account: account as string, mailFrom: 'app@example.com', rcptTo: ['a@example.org'], raw: Buffer.from('Subject: x\r\n\r\nhi') });
      // One turn, so one batch and one transaction. The middle write fails after its body row is
      // in (a message row without an account breaks NOT NULL): its savepoint takes the body back out.
      const results = await Promise.allSettled(['app', null, 'app'].map((a) => d.enqueueSoon(message(a), Date.now())));
      expect(results.map((r) => r.status)).to.deep.equal(['fulfilled', 'rejected', 'fulfilled']);
      const messages = new MessageStore(db);
      for (const r of [results[0], results[2]]) {
        const [id] = (r as PromiseFulfilledResult<string[]>).value;
        expect(messages.get(id!), 'committed').to.not.equal(undefined);
      }
      expect(messages.list({ limit: 10 })).to.have.length(2);
      expect(db.prepare('SELECT count(*) AS n FROM mail_bodies').get(), 'no body left of the refused one').to.deep.equal({ n: 2 });
    } finally {
      await d.stop();
      await d.close();
      db.close();
    }
  });

  it('a thread that cannot open the store fails start() with the reason; nothing is left running', async () => {
    const file = join(tmp.dir, 'not-a-dir');
    writeFileSync(file, 'x');
    const threads = () => readdirSync('/proc/self/task').length; // Linux: one entry per thread of this process
    const before = threads();
    const err = await ThreadedDelivery.start(setup(file), () => undefined).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(Error);
    expect((err as Error).message).to.match(/EEXIST|ENOTDIR|not a directory|file already exists/i);
    await eventually(() => threads() <= before, 5000, 'the threads gone');
  });
});
