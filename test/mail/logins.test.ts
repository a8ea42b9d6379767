// Password guessing: failures counted per account and per client address across connections,
// lockouts (454 4.7.0) that refuse even the right password, and at most a few AUTH exchanges per
// address at once. The lockout arithmetic as a table on a fake clock; then real STARTTLS + AUTH
// sessions against a relay whose login clock and 535 delays the test moves (no sleeps). Other
// clients are other loopback addresses (127.0.0.x as the connection's local address).
import { expect } from 'chai';
import { LoginLockout, LoginSlots } from '../../src/mail/smtp/throttle.js';
import { ACCOUNT, authPlain, eventually, rawTls, startRelay, type RelayFixture } from './helpers.js';

const LOCK = { failures: 10, baseMs: 60_000, maxMs: 15 * 60_000, forgetMs: 60 * 60_000 };

describe('mail: login lockouts and concurrent logins per address', function () {
  describe('LoginLockout (fake clock)', () => {
    it('10 failures lock for 1 min, each next lockout doubles up to 15 min; an hour without failures starts over', () => {
      let now = 0;
      const l = new LoginLockout(LOCK, () => now);
      const tenFailures = () => Array.from({ length: 10 }, () => l.fail('account:app')).filter(Boolean);
      expect(Array.from({ length: 9 }, () => l.fail('account:app'))).to.deep.equal([0, 0, 0, 0, 0, 0, 0, 0, 0]);
      expect(l.lockedFor('account:app')).to.equal(0);
      expect(l.fail('account:app')).to.equal(60_000);
      expect(l.lockedFor('account:app')).to.equal(60_000);
      expect(l.lockedFor('account:other'), 'keys are independent').to.equal(0);
      now += 59_999;
      expect(l.lockedFor('account:app')).to.equal(1);
      const lockouts: number[] = [];
      for (let i = 0; i < 6; i++) {
        now += l.lockedFor('account:app'); // wait it out, then guess on
        lockouts.push(...tenFailures());
      }
      expect(lockouts).to.deep.equal([120_000, 240_000, 480_000, 900_000, 900_000, 900_000]);
      now += 900_000 + 60 * 60_000; // an hour quiet after the last lockout ended
      expect(tenFailures()).to.deep.equal([60_000]);
    });

    it('a success forgets the failures so far, but not a lockout in force', () => {
      let now = 0;
      const l = new LoginLockout(LOCK, () => now);
      for (let i = 0; i < 9; i++) l.fail('ip:192.0.2.1');
      l.succeed('ip:192.0.2.1');
      expect(l.fail('ip:192.0.2.1'), 'counting starts over').to.equal(0);
      for (let i = 0; i < 9; i++) l.fail('ip:192.0.2.1');
      expect(l.lockedFor('ip:192.0.2.1')).to.equal(60_000);
      l.succeed('ip:192.0.2.1');
      expect(l.lockedFor('ip:192.0.2.1')).to.equal(60_000);
      now += 60_000;
      expect(l.lockedFor('ip:192.0.2.1')).to.equal(0);
    });

    it('LoginSlots: two at once per key, the rest wait in order; a released slot passes to the next', async () => {
      const s = new LoginSlots(2);
      const order: string[] = [];
      const a = await s.acquire('ip');
      const b = await s.acquire('ip');
      const c = s.acquire('ip').then((rel) => (order.push('c'), rel));
      const d = s.acquire('ip').then((rel) => (order.push('d'), rel));
      const other = await s.acquire('ip2'); // another address is not held up
      expect(s.inProgress('ip')).to.equal(4);
      a();
      a(); // twice is once
      (await c)();
      b();
      (await d)();
      other();
      expect(order).to.deep.equal(['c', 'd']);
      expect(s.inProgress('ip')).to.equal(0);
    });
  });

  describe('against a relay', () => {
    let r: RelayFixture | undefined;
    let now = Date.parse('2026-01-01T00:00:00Z');
    /** Failed logins waiting for their 535, released by the test. */
    const held: (() => void)[] = [];
    afterEach(async () => {
      for (const release of held.splice(0)) release();
      await r?.close();
      r = undefined;
    });

    async function relay(o: { holdFailures?: boolean; slots?: LoginSlots } = {}) {
      r = await startRelay({
        clock: () => now,
        authSleep: () => (o.holdFailures ? new Promise<void>((resolve) => held.push(resolve)) : Promise.resolve()),
        ...(o.slots ? { loginSlots: o.slots } : {}),
      });
      await r.store.addAccount(ACCOUNT);
      return r;
    }

    /** One STARTTLS session from `from` (a 127.0.0.x address) that sends AUTH PLAIN; the reply. */
    async function login(from: string, pass: string, user: string = ACCOUNT.name): Promise<string> {
      const s = await rawTls(r!, r!.submissionPort, from);
      try {
        s.send(authPlain(user, pass));
        return await s.reply();
      } finally {
        s.close();
      }
    }

    it('10 wrong passwords from 10 addresses lock the account: the right one is 454 4.7.0 from anywhere, by name or email, until the lockout ends; an API key still logs in', async () => {
      await relay();
      const { key } = r!.store.addKey(ACCOUNT.name, { label: 'ci' });
      const guesses = await Promise.all(Array.from({ length: 10 }, (_, i) => login(`127.0.0.${i + 2}`, `wrong guess ${i}`)));
      expect(guesses.map((g) => g.slice(0, 9))).to.deep.equal(Array(10).fill('535 5.7.8'));
      expect(await login('127.0.0.20', ACCOUNT.password)).to.equal('454 4.7.0 Too many failed logins for this account, try again in 60 s\r\n');
      expect(await login('127.0.0.21', ACCOUNT.password, ACCOUNT.email)).to.equal('454 4.7.0 Too many failed logins for this account, try again in 60 s\r\n');
      expect(await login('127.0.0.22', key), 'a key cannot be guessed: it still opens the account').to.match(/^235 /);
      now += 59_000;
      expect(await login('127.0.0.20', ACCOUNT.password)).to.equal('454 4.7.0 Too many failed logins for this account, try again in 1 s\r\n');
      now += 1000;
      expect(await login('127.0.0.20', ACCOUNT.password)).to.match(/^235 /);
    });

    it('10 failures from one address (any names, existing or not) lock that address: its next AUTH is 454 whatever it sends; other addresses log in', async () => {
      await relay();
      await r!.store.addAccount({ name: 'other', email: 'other@example.net', password: 'another long password', allowed_domains: ['example.net'] });
      const names = ['admin', 'root', 'postmaster', 'info', 'test', 'user', 'mail', 'other', 'sales', 'support'];
      for (const name of names) expect(await login('127.0.0.30', 'Password1', name), name).to.match(/^535 /);
      expect(await login('127.0.0.30', ACCOUNT.password)).to.equal('454 4.7.0 Too many failed logins from 127.0.0.30, try again in 60 s\r\n');
      expect(await login('127.0.0.31', ACCOUNT.password)).to.match(/^235 /);
      expect(await login('127.0.0.31', 'another long password', 'other')).to.match(/^235 /);
    });

    it('a name that is no account locks like one (a lockout does not tell which names exist)', async () => {
      await relay();
      for (let i = 0; i < 10; i++) await login(`127.0.0.${40 + i}`, 'guess', 'nobody');
      expect(await login('127.0.0.60', 'guess', 'nobody')).to.equal('454 4.7.0 Too many failed logins for this account, try again in 60 s\r\n');
      expect(await login('127.0.0.61', ACCOUNT.password)).to.match(/^235 /);
    });

    it('at most 2 AUTHs per address at once: a failed one keeps its place until its 535, the next login from that address waits for it; other addresses do not', async () => {
      const slots = new LoginSlots(2);
      await relay({ holdFailures: true, slots });
      const replies: string[] = [];
      const tagged = (tag: string, p: Promise<string>) => p.then((reply) => (replies.push(`${tag} ${reply.slice(0, 3)}`), reply));
      const wrong = [tagged('wrong', login('127.0.0.70', 'wrong one')), tagged('wrong', login('127.0.0.70', 'wrong two'))];
      await eventually(() => held.length === 2, 10_000, 'both failures waiting for their 535');
      const right = tagged('right', login('127.0.0.70', ACCOUNT.password));
      await eventually(() => slots.inProgress('127.0.0.70') === 3, 10_000, 'the third AUTH from that address waiting for a slot');
      expect(await tagged('elsewhere', login('127.0.0.71', ACCOUNT.password)), 'another address logs in meanwhile').to.match(/^235 /);
      expect(replies, 'the waiting login has no reply while both slots are taken').to.deep.equal(['elsewhere 235']);
      held.shift()!(); // a 535 goes out: its slot passes to the waiting login
      expect(await right).to.match(/^235 /);
      held.shift()!();
      await Promise.all(wrong);
      expect(replies.filter((x) => x.startsWith('wrong'))).to.deep.equal(['wrong 535', 'wrong 535']);
      expect(slots.inProgress('127.0.0.70')).to.equal(0);
    });
  });
});
