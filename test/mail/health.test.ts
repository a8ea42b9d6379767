// The `mail` component of the controller's /health: the relay (its own process) writes a heartbeat
// row, the controller reads it from the shared SQLite file (mailComponent(), what controller.ts
// reports). A table for the rule, then a real relay on a temp data dir.
import { expect } from 'chai';
import { HEARTBEAT_STALE_MS, mailComponent, mailHealth, readHeartbeat, type Heartbeat } from '../../src/mail/heartbeat.js';
import { MailStore } from '../../src/mail/store.js';
import { openDb } from '../../src/store/db.js';
import { tempDir } from '../helpers/tmp.js';
import { ACCOUNT, eventually, startRelay, type RelayFixture } from './helpers.js';

describe('mail: /health component from the relay heartbeat', () => {
  const NOW = 1_700_000_000_000;
  const hb = (over: Partial<Heartbeat>): Heartbeat => ({ owner: 'relay.example.net:42:abc', started_at_ms: NOW - 3_600_000, at_ms: NOW - 1000, stopped_at_ms: null, ...over });
  const cases: [string, number, Heartbeat | undefined, string, RegExp][] = [
    // what, accounts, heartbeat → status, detail
    ['no account, no relay', 0, undefined, 'disabled', /no mail account/],
    ['no account, relay running', 0, hb({}), 'disabled', /no mail account/],
    ['accounts, relay never ran', 2, undefined, 'degraded', /never run/],
    ['accounts, beat 1 s ago', 2, hb({}), 'ok', /^relay up since 2023-11-14T21:13:20\.000Z$/],
    ['accounts, beat exactly 30 s ago', 2, hb({ at_ms: NOW - HEARTBEAT_STALE_MS }), 'ok', /up since/],
    ['accounts, beat 31 s ago', 2, hb({ at_ms: NOW - 31_000 }), 'degraded', /^no heartbeat from the mail relay for 31 s \(last at 2023-11-14T22:12:49\.000Z\)$/],
    ['accounts, stopped cleanly', 2, hb({ stopped_at_ms: NOW - 5000, at_ms: NOW - 5000 }), 'degraded', /^the mail relay stopped at 2023-11-14T22:13:15\.000Z$/],
  ];
  for (const [what, accounts, heartbeat, status, detail] of cases)
    it(`${what}: ${status}`, () => {
      const h = mailHealth(accounts, heartbeat, NOW);
      expect(h.status).to.equal(status);
      expect(h.detail).to.match(detail);
    });

  describe('with a real relay', () => {
    let r: RelayFixture | undefined;
    afterEach(async () => {
      await r?.close();
      r = undefined;
    });

    it('disabled without accounts, ok while the relay beats, degraded once it stops or its beat goes stale', async () => {
      r = await startRelay({ heartbeatMs: 50 });
      expect(mailComponent(r.db, Date.now()).status).to.equal('disabled');
      await r.store.addAccount(ACCOUNT);
      expect(mailComponent(r.db, Date.now())).to.include({ status: 'ok' });
      // It keeps beating: the row moves on.
      const first = readHeartbeat(r.db)!;
      await eventually(() => readHeartbeat(r!.db)!.at_ms > first.at_ms, 2000, 'a second beat');
      // Seen 31 s later without a new beat (a hung or killed relay): degraded.
      expect(mailComponent(r.db, readHeartbeat(r.db)!.at_ms + 31_000).status).to.equal('degraded');

      await r.relay.stop();
      const stopped = mailComponent(r.db, Date.now());
      expect(stopped.status).to.equal('degraded');
      expect(stopped.detail).to.match(/^the mail relay stopped at /);
    });

    it('accounts on a data dir where no relay ever ran: degraded', async () => {
      const tmp = tempDir('dnsproxy-mail-');
      const db = openDb(tmp.dir);
      try {
        await new MailStore(db).addAccount(ACCOUNT);
        expect(mailComponent(db, Date.now())).to.deep.equal({ status: 'degraded', detail: 'the mail relay has never run on this data dir (start dnsproxy mail serve)' });
      } finally {
        db.close();
        tmp.cleanup();
      }
    });
  });
});
