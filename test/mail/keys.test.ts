// Account API keys: the pure rules (format, expiry, rotation), the credential checker (cache,
// single flight, hash slots, never blocking the event loop), and SMTP AUTH with a key against a
// real relay: what a client sees (235 / 535 / 530) and what the admin sees (last used).
import { expect } from 'chai';
import { Authenticator, AuthBusyError } from '../../src/mail/credentials/auth.js';
import { keyHash, keyState, looksLikeKey, newKey, rotationPlan } from '../../src/mail/credentials/apikeys.js';
import { duration } from '../../src/model/mail.js';
import { MailStore } from '../../src/mail/store.js';
import { openDb, type Db } from '../../src/store/db.js';
import { tempDir } from '../helpers/tmp.js';
import { ACCOUNT, authPlain, client, eventually, mail, queuedIds, rawTls, refusal, relayWithSink, type RelayFixture } from './helpers.js';

const NOW = Date.parse('2030-01-01T00:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();
const H = 3_600_000;

describe('mail: API keys (pure rules)', () => {
  it('a key is dpk_<12 hex id>_<256-bit secret>; only that shape counts as a key; the stored hash is sha256 hex', () => {
    const { id, key } = newKey();
    expect(key).to.match(/^dpk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
    expect(key.startsWith(`dpk_${id}_`)).to.equal(true);
    expect(looksLikeKey(key)).to.equal(true);
    for (const notKey of ['correct horse battery', `${key}x`, key.replace('dpk_', 'dpx_'), '']) expect(looksLikeKey(notKey), notKey).to.equal(false);
    expect(keyHash(key)).to.match(/^[0-9a-f]{64}$/).and.not.include(key);
    expect(newKey().key).not.to.equal(key);
  });

  it('state: active without expiry, expiring before it, expired from it on', () => {
    const cases: [string | null, string][] = [
      [null, 'active'],
      [iso(NOW + 1), 'expiring'],
      [iso(NOW), 'expired'],
      [iso(NOW - H), 'expired'],
    ];
    for (const [expires, state] of cases) expect(keyState(expires, NOW), String(expires)).to.equal(state);
  });

  it('rotation plan: the table in apikeys.ts', () => {
    const old = [
      { id: 'never', expires_at: null },
      { id: 'late', expires_at: iso(NOW + 48 * H) },
      { id: 'soon', expires_at: iso(NOW + H) },
      { id: 'gone', expires_at: iso(NOW - H) },
    ];
    expect(rotationPlan(old, NOW, 0)).to.deep.equal({ remove: ['never', 'late', 'soon', 'gone'], expire: [] });
    expect(rotationPlan(old, NOW, 24 * H)).to.deep.equal({
      remove: ['gone'],
      expire: [
        { id: 'never', expires_at: iso(NOW + 24 * H) },
        { id: 'late', expires_at: iso(NOW + 24 * H) },
      ],
    });
  });

  it('durations: 90s 30m 24h 7d 0; anything else is refused with the expected form', () => {
    const ok: [string, number][] = [['0', 0], ['90s', 90_000], ['30m', 1_800_000], ['24h', 86_400_000], ['7d', 604_800_000]];
    for (const [text, ms] of ok) expect(duration.parse(text), text).to.equal(ms);
    for (const bad of ['', '24', '1w', '-1h', '1.5h', '400d']) expect(duration.safeParse(bad).success, bad).to.equal(false);
    expect(duration.safeParse('1w').error?.issues[0]?.message).to.include('30m, 24h, 7d');
  });
});

describe('mail: API keys in the store and the credential checker', () => {
  let tmp: ReturnType<typeof tempDir>;
  let db: Db;
  let store: MailStore;
  let now: number;

  beforeEach(async () => {
    tmp = tempDir('dnsproxy-keys-');
    db = openDb(tmp.dir);
    now = NOW;
    store = new MailStore(db, () => new Date(now));
    await store.addAccount(ACCOUNT);
    await store.addAccount({ ...ACCOUNT, name: 'other', email: 'other@example.com' });
  });
  afterEach(() => {
    db.close();
    tmp.cleanup();
  });

  it('lists keys without the key or its hash; revoke is per account (404 otherwise); removing the account removes its keys', () => {
    const { info, key } = store.addKey('app', { label: 'ci', expires_in: 24 * H });
    expect(info).to.deep.equal({ id: info.id, account: 'app', label: 'ci', created_at: iso(NOW), last_used_at: null, expires_at: iso(NOW + 24 * H), revoked_at: null, state: 'expiring' });
    const listed = JSON.stringify(store.keys('app'));
    expect(listed).not.to.include(key).and.not.to.include(keyHash(key)).and.not.to.include('hash');
    expect(() => store.revokeKey('other', info.id)).to.throw(/has no key/);
    expect(() => store.keys('nobody')).to.throw('no account nobody');
    store.removeAccount('app');
    expect(db.prepare('SELECT COUNT(*) AS n FROM mail_account_keys').get()).to.deep.equal({ n: 0 });
  });

  it('rotate: one transaction adds the new key and sets the old ones to expire after the grace (or removes them)', () => {
    const a = store.addKey('app', { label: 'a' });
    const b = store.addKey('app', { label: 'b' });
    const r = store.rotateKey('app', { keep_old: 2 * H });
    expect(r.info.label).to.equal('rotated 2030-01-01');
    // Keys are listed by created_at, then id; both were made at the same (fixed) instant, so by id.
    expect(r.kept.map((k) => [k.id, k.state, k.expires_at])).to.deep.equal([a.info.id, b.info.id].sort().map((id) => [id, 'expiring', iso(NOW + 2 * H)]));
    const again = store.rotateKey('app', { keep_old: 0, label: 'now' });
    expect(again.removed.sort()).to.deep.equal([a.info.id, b.info.id, r.info.id].sort());
    expect(again.kept).to.deep.equal([]);
    // Revoked by the rotation: still listed, as revoked; a later rotation leaves them alone.
    expect(store.keys('app').map((k) => [k.label, k.state, k.revoked_at])).to.deep.include.members([['a', 'revoked', iso(NOW)], ['b', 'revoked', iso(NOW)], ['rotated 2030-01-01', 'revoked', iso(NOW)], ['now', 'active', null]]);
    expect(store.rotateKey('app', { keep_old: 0, label: 'later' }).removed).to.deep.equal([again.info.id]);
  });

  it('a key logs in as its own account (name or email), not as another; expired and revoked keys fail; a key-shaped unknown secret falls back to the password check', async () => {
    const hashes: string[] = [];
    const auth = new Authenticator(store, { now: () => now, touchFlushMs: 60_000, verifyPassword: async (pw) => (hashes.push(pw), false) });
    try {
      const { info, key } = store.addKey('app', { label: 'k', expires_in: H });
      expect((await auth.verify('app', key))?.keyId).to.equal(info.id);
      expect((await auth.verify('APP@example.com', key))?.account.name).to.equal('app');
      expect(await auth.verify('other', key)).to.equal(undefined);
      expect(hashes).to.deep.equal([]); // keys never touch scrypt
      const stranger = newKey().key;
      expect(await auth.verify('app', stranger)).to.equal(undefined);
      expect(hashes).to.deep.equal([stranger]);
      now = NOW + H;
      expect(await auth.verify('app', key)).to.equal(undefined);
      now = NOW;
      store.revokeKey('app', info.id);
      expect(await auth.verify('app', key)).to.equal(undefined);
    } finally {
      auth.close();
    }
  });

  it('last used is written in batches on a timer (not on the AUTH path), and on close', async () => {
    const auth = new Authenticator(store, { now: () => now, touchFlushMs: 60_000 });
    const { key } = store.addKey('app', { label: 'k' });
    await auth.verify('app', key);
    expect(store.keys('app')[0]!.last_used_at).to.equal(null);
    auth.close();
    expect(store.keys('app')[0]!.last_used_at).to.equal(iso(NOW));
  });

  it('a successful password login is cached (one scrypt for repeats and for concurrent logins); failures, a changed password and an expired entry hash again', async () => {
    const hashes: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const verifyPassword = async (pw: string) => {
      hashes.push(pw);
      await gate;
      return pw === ACCOUNT.password;
    };
    const auth = new Authenticator(store, { now: () => now, cacheTtlMs: 60_000, verifyPassword });
    try {
      const five = Promise.all([1, 2, 3, 4, 5].map(() => auth.verify('app', ACCOUNT.password)));
      await new Promise((r) => setImmediate(r));
      release();
      expect((await five).map((ok) => ok?.account.name)).to.deep.equal(['app', 'app', 'app', 'app', 'app']);
      expect(await auth.verify('app@example.com', ACCOUNT.password)).to.have.nested.property('account.name', 'app');
      expect(hashes).to.have.length(1);
      expect(await auth.verify('app', 'wrong password')).to.equal(undefined);
      expect(await auth.verify('app', 'wrong password')).to.equal(undefined);
      expect(hashes).to.have.length(3);
      now += 60_001;
      await auth.verify('app', ACCOUNT.password);
      expect(hashes).to.have.length(4);
      // The account is re-created (a new stored hash): the old entry no longer matches.
      store.removeAccount('app');
      await store.addAccount(ACCOUNT);
      await auth.verify('app', ACCOUNT.password);
      expect(hashes).to.have.length(5);
    } finally {
      auth.close();
    }
  });

  it('hash slots: beyond the running and waiting limits a login is refused as busy (454), not queued forever', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const auth = new Authenticator(store, { maxConcurrentHashes: 1, maxWaitingHashes: 1, verifyPassword: async () => (await gate, false) });
    try {
      const first = auth.verify('app', 'one');
      const second = auth.verify('app', 'two');
      let busy: unknown;
      await auth.verify('app', 'three').catch((e: unknown) => (busy = e));
      expect(busy).to.be.instanceOf(AuthBusyError);
      release();
      expect(await Promise.all([first, second])).to.deep.equal([undefined, undefined]);
    } finally {
      auth.close();
    }
  });

  it('real scrypt runs off the event loop: timers keep firing while four logins hash', async () => {
    const auth = new Authenticator(store);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    try {
      const results = await Promise.all(['a', 'b', 'c', 'd'].map((p) => auth.verify('app', `wrong ${p}`)));
      expect(results).to.deep.equal([undefined, undefined, undefined, undefined]);
      expect(ticks).to.be.greaterThan(3);
    } finally {
      clearInterval(timer);
      auth.close();
    }
  });
});

describe('mail: SMTP AUTH with an API key (real relay)', function () {
  let r: RelayFixture;
  /** The relay's clock (key expiry, login throttle): the wall clock unless a test pins it. */
  let pinned: number | null = null;
  beforeEach(() => (pinned = null));
  relayWithSink({ keyTouchFlushMs: 50, clock: () => pinned ?? Date.now() }, (f) => ({ r } = f));
  /** When key `id` of the app account expires, by the store. */
  const expiry = (id: string) => Date.parse(r.store.keys('app').find((k) => k.id === id)!.expires_at!);

  it('a key works as the password (user = account name or email), the message is queued, and the key shows last used', async () => {
    const { info, key } = r.store.addKey('app', { label: 'ci' });
    const sent = await client(r, { pass: key }).sendMail(mail());
    expect(queuedIds(sent.response)).to.have.length(1);
    await client(r, { user: ACCOUNT.email, pass: key }).sendMail(mail());
    const used = await eventually(() => r.store.keys('app').find((k) => k.id === info.id && k.last_used_at !== null), 5000, 'last_used_at');
    expect(Date.parse(used.last_used_at!)).to.be.closeTo(Date.now(), 10_000);
    expect(await client(r).sendMail(mail())).to.have.property('response').that.match(/^250 /); // the password still works too
  });

  it('a revoked key, an expired key and a key of another account get 535 5.7.8', async () => {
    await r.store.addAccount({ ...ACCOUNT, name: 'other', email: 'other@example.com' });
    const revoked = r.store.addKey('app', { label: 'revoked' });
    r.store.revokeKey('app', revoked.info.id);
    const expired = r.store.addKey('app', { label: 'expired', expires_in: 1000 });
    const foreign = r.store.addKey('other', { label: 'theirs' });
    pinned = expiry(expired.info.id); // the instant it expires, without waiting 1 s for it
    for (const key of [revoked.key, expired.key, foreign.key]) {
      const e = await refusal(client(r, { pass: key }).sendMail(mail()));
      expect(e.responseCode).to.equal(535);
      expect(e.response).to.include('5.7.8');
    }
    expect(r.messages.list()).to.have.length(0);
  });

  it('rotate with a grace: old and new keys both work, then the old one gets 535 while the new one works', async () => {
    const old = r.store.addKey('app', { label: 'v1' });
    const rotated = r.store.rotateKey('app', { keep_old: 1500 });
    // The relay's clock at the last ms of the grace, then at its end: however slow the sends are.
    pinned = expiry(old.info.id) - 1;
    await client(r, { pass: old.key }).sendMail(mail());
    await client(r, { pass: rotated.key }).sendMail(mail());
    pinned += 1;
    expect((await refusal(client(r, { pass: old.key }).sendMail(mail()))).responseCode).to.equal(535);
    expect((await client(r, { pass: rotated.key }).sendMail(mail())).response).to.match(/^250 /);
  });

  it('a session that logged in with a key gets 530 at its next MAIL FROM once the key is revoked', async () => {
    const { info, key } = r.store.addKey('app', { label: 'pooled' });
    const s = await rawTls(r);
    try {
      s.send(authPlain('app', key));
      expect(await s.reply()).to.match(/^235 /);
      s.send('MAIL FROM:<app@example.com>');
      expect(await s.reply()).to.match(/^250 /);
      s.send('RSET');
      await s.reply();
      r.store.revokeKey('app', info.id);
      s.send('MAIL FROM:<app@example.com>');
      expect(await s.reply()).to.match(/^530 5\.7\.0 The API key this session logged in with was revoked or has expired/);
    } finally {
      s.close();
    }
  });
});
