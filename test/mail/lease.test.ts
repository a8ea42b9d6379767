// Leases left by a relay that was killed mid-delivery on this host: the next relay releases them at
// start instead of waiting out the whole lease (2 minutes in production), so a supervisord restart
// resumes delivery at once. Leases of live owners, other hosts and unknown forms are waited out.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import { MessageStore } from '../../src/mail/queue/messages.js';
import { ownerGone } from '../../src/mail/queue/queue.js';
import { openDb } from '../../src/store/db.js';
import { tempDir } from '../helpers/tmp.js';
import { configure, eventually, sink, startRelay, type RelayFixture, type Sink } from './helpers.js';

/** The pid of a process that has already exited. */
function deadPid(): number {
  const pid = spawnSync('true').pid;
  if (!pid) throw new Error('could not run `true`');
  return pid;
}

describe('mail: leases of a relay that died on this host', () => {
  it('ownerGone: only an owner on this host whose process has exited', () => {
    const dead = deadPid();
    const host = hostname();
    const cases: [string, boolean][] = [
      [`${host}:${dead}:a1b2c3`, true],
      [`${host}:${process.pid}:a1b2c3`, false], // ourselves
      [`${host}:${process.ppid}:a1b2c3`, false], // a live process
      [`other-host.example:${dead}:a1b2c3`, false], // another machine sharing the file: wait out its lease
      ['crashed-relay', false], // not a Queue owner: wait out its lease
      [`${host}:${dead}`, false],
    ];
    for (const [owner, gone] of cases) expect(ownerGone(owner), owner).to.equal(gone);
  });

  it('releaseLeases ends the leases of gone owners only; their messages are claimable at once', () => {
    const tmp = tempDir();
    const db = openDb(tmp.dir);
    try {
      const q = new MessageStore(db);
      for (const to of ['a@example.org', 'b@example.net', 'c@example.com']) q.enqueue({ account: 'app', mailFrom: 'x@example.com', rcptTo: [to], raw: Buffer.from('body') }, 1000);
      const [a] = q.claim('gone', 1, 1000, 120_000);
      const [b] = q.claim('alive', 1, 1000, 120_000);
      expect(q.releaseLeases((o) => o === 'gone', 2000)).to.equal(1);
      expect(q.claim('next', 10, 2000, 120_000).map((m) => m.id).sort()).to.have.members([a!.id, q.list().find((m) => m.recipient_domain === 'example.com')!.id]);
      expect(q.get(b!.id)).to.include({ status: 'sending', lease_owner: 'alive' });
      expect(q.releaseLeases(() => true, 2000)).to.equal(3); // had every owner gone: b and next's two
    } finally {
      db.close();
      tmp.cleanup();
    }
  });

  describe('a relay starting on a queue with such a lease', () => {
    let r: RelayFixture | undefined;
    let s: Sink | undefined;
    afterEach(async () => {
      await r?.close();
      await s?.close();
      r = s = undefined;
    });

    it('delivers the message at once instead of after the 2-minute lease', async () => {
      s = sink();
      await s.listen();
      const tmp = tempDir('dnsproxy-mail-');
      // The crashed relay's state: a message leased for 2 minutes by a process that no longer runs.
      const db = openDb(tmp.dir);
      const q = new MessageStore(db);
      const [id] = q.enqueue({ account: 'app', mailFrom: 'app@example.com', rcptTo: ['orphan@example.org'], raw: Buffer.from('Subject: orphan\r\n\r\nbody\r\n') }, Date.now());
      q.claim(`${hostname()}:${deadPid()}:0badc0`, 1, Date.now(), 120_000);
      db.close();
      r = await startRelay({ leaseMs: 120_000 }, tmp.dir);
      const close = r.close.bind(r);
      r.close = async () => {
        await close();
        tmp.cleanup();
      };
      await configure(r, { smtp: s.port });
      await eventually(() => r!.messages.get(id!)?.status === 'delivered', 5000, 'delivery of the orphaned message');
      expect(s.received.map((m) => m.to)).to.deep.equal([['orphan@example.org']]);
    });
  });
});
