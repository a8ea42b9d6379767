// The relay's SQLite side: migration 3 on an existing database, accounts and passwords, the queue's
// per-domain split, claims and leases, and the self-signed certificate.
import { expect } from 'chai';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { AppError } from '../../src/errors.js';
import { idMaker, MessageStore } from '../../src/mail/queue/messages.js';
import { verifyPassword } from '../../src/mail/credentials/password.js';
import { accountInput } from '../../src/model/mail.js';
import { MailStore } from '../../src/mail/store.js';
import { loadTls } from '../../src/mail/credentials/tls.js';
import { derInt } from '../../src/mail/credentials/cert.js';
import { DB_FILE, migrate, openDb } from '../../src/store/db.js';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { tempDir } from '../helpers/tmp.js';

describe('mail: store', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => (tmp = tempDir()));
  afterEach(() => tmp.cleanup());

  it('the mail migrations (3 and later) upgrade a version-2 database in place, keeping its records; a second run is a no-op', () => {
    const raw = new Database(join(tmp.dir, DB_FILE));
    for (const [i, sql] of MIGRATIONS.slice(0, 2).entries()) {
      raw.exec(sql);
      raw.pragma(`user_version = ${i + 1}`);
    }
    raw.prepare(`INSERT INTO zones (name, serial) VALUES ('home.arpa.', 7)`).run();
    raw.close();
    const db = openDb(tmp.dir);
    migrate(db);
    expect(db.pragma('user_version', { simple: true })).to.equal(MIGRATIONS.length);
    expect(db.prepare('SELECT serial FROM zones').get()).to.deep.equal({ serial: 7 });
    const tables = (db.prepare(`SELECT name FROM sqlite_master WHERE name LIKE 'mail_%' AND type = 'table' ORDER BY name`).all() as { name: string }[]).map((t) => t.name);
    expect(tables).to.deep.equal([
      'mail_account_keys',
      'mail_accounts',
      'mail_bodies',
      'mail_deliveries',
      'mail_dkim_keys',
      'mail_dkim_published',
      'mail_domain_records',
      'mail_messages',
      'mail_providers',
      'mail_published_domains',
      'mail_relay_heartbeat',
      'mail_rules',
      'mail_settings_version',
      'mail_suppressions',
      'mail_tls_cert',
      'mail_tls_presented',
    ]);
    db.close();
  });

  it('accounts: scrypt hash (never the password), login by name or email, conflicts refused', async () => {
    const db = openDb(tmp.dir);
    const store = new MailStore(db);
    // Input is parsed at the edge (API, CLI) as here: the email is lower-cased.
    await store.addAccount(accountInput.parse({ name: 'app', email: 'App@Example.com', password: 'correct horse battery', allowed_domains: ['Example.COM.'] }));
    expect(store.account('app')?.allowed_domains).to.deep.equal(['example.com']);
    const row = db.prepare('SELECT password_hash FROM mail_accounts').get() as { password_hash: string };
    expect(row.password_hash).to.match(/^scrypt\$32768\$8\$1\$/).and.not.include('correct horse');
    expect(await verifyPassword('correct horse battery', row.password_hash)).to.equal(true);
    expect(await verifyPassword('correct horse batterY', row.password_hash)).to.equal(false);
    expect(await verifyPassword('x', 'garbage')).to.equal(false);
    expect(store.login('app@example.com')?.account.name).to.equal('app');
    expect(store.login('APP')?.account.email).to.equal('app@example.com');
    const dup = await store.addAccount({ name: 'app', email: 'other@example.com', password: 'another password', allowed_domains: ['example.com'] }).catch((e: unknown) => e);
    expect(dup).to.be.instanceOf(AppError).with.property('code', 'conflict');
    db.close();
  });

  it('settings are cached: a change from another connection is seen from the next event-loop turn, one through any store on this connection at once', async () => {
    const db = openDb(tmp.dir);
    const other = openDb(tmp.dir); // the controller's connection, or an operator with sqlite3
    const store = new MailStore(db);
    const turn = () => new Promise((resolve) => setImmediate(resolve));
    await store.addAccount(accountInput.parse({ name: 'app', email: 'app@example.com', password: 'correct horse battery', allowed_domains: ['example.com'] }));
    expect(store.account('app')?.allowed_domains).to.deep.equal(['example.com']);
    other.prepare(`UPDATE mail_accounts SET allowed_domains = '["example.org"]' WHERE name = 'app'`).run();
    await turn();
    expect(store.account('app')?.allowed_domains).to.deep.equal(['example.org']);
    store.putProvider({ name: 'sink', config: { type: 'smtp', host: '127.0.0.1', port: 2525, allow_private: true } });
    const rule = new MailStore(db).addRule({ priority: 10, sender_domain: null, recipient_domain: null, account: null, provider: 'sink', fallback_provider: null });
    expect(store.rules().map((r) => r.id), 'a second store on the same connection, same turn').to.deep.equal([rule.id]);
    const { info } = store.addKey('app', { label: 'ci' });
    expect(store.keyLive(info.id, Date.now())).to.equal(true);
    other.prepare('DELETE FROM mail_account_keys WHERE id = ?').run(info.id);
    await turn();
    expect(store.keyLive(info.id, Date.now()), 'revoked from elsewhere').to.equal(false);
    other.prepare("DELETE FROM mail_accounts WHERE name = 'app'").run();
    await turn();
    expect(store.account('app')).to.equal(undefined);
    other.close();
    db.close();
  });

  it('group commit: the writes of one turn share one transaction, and one that fails is undone alone', async () => {
    const db = openDb(tmp.dir);
    const q = new MessageStore(db);
    const message = (account: string, to: string) => ({ account, mailFrom: 'app@example.com', rcptTo: [to], raw: Buffer.from(`To: ${to}\r\n\r\nhi`) });
    const good = q.enqueueSoon(message('app', 'ann@example.org'), 1000);
    const bad = q.enqueueSoon(message(null as unknown as string, 'bob@example.org'), 1000); // account is NOT NULL
    const alsoGood = q.enqueueSoon(message('app', 'cy@example.net'), 1000);
    const [a, err, c] = await Promise.all([good, bad.catch((e: unknown) => e), alsoGood]);
    expect(err).to.be.instanceOf(Error).with.property('code', 'SQLITE_CONSTRAINT_NOTNULL');
    expect(q.list().map((m) => m.id).sort()).to.deep.equal([...a, ...(c)].sort());
    expect(db.prepare('SELECT count(*) AS n FROM mail_bodies').get(), "the failed message's body went with it").to.deep.equal({ n: 2 });
    db.close();
  });

  it('queue: one message per recipient domain over one body; a claim leases each due message to one owner', () => {
    const db = openDb(tmp.dir);
    const q = new MessageStore(db);
    const ids = q.enqueue({ account: 'app', mailFrom: 'a@example.com', rcptTo: ['x@example.org', 'y@EXAMPLE.org', 'z@example.net'], raw: Buffer.from('body') }, 1000);
    expect(ids).to.have.length(2);
    expect(ids.map((id) => q.get(id)!.rcpt_to)).to.deep.equal([['x@example.org', 'y@EXAMPLE.org'], ['z@example.net']]);
    expect(q.claim('a', 10, 999, 100)).to.have.length(0); // not due yet
    const first = q.claim('a', 1, 1000, 100);
    expect(first.map((m) => [m.status, m.lease_owner, m.lease_until])).to.deep.equal([['sending', 'a', 1100]]);
    expect(q.claim('b', 10, 1050, 100).map((m) => m.id)).to.deep.equal([ids[1]]); // the leased one is not handed out twice
    expect(q.claim('b', 10, 1101, 100).map((m) => m.id)).to.deep.equal([first[0]!.id]); // its lease lapsed
    // The old owner can no longer record anything for it.
    expect(q.finish(first[0]!.id, 'a', null, { status: 'delivered', next_attempt_at: 0, provider: 'p', last_error: null }, 1200)).to.equal(false);
    // Final for both: the shared body is purged only then.
    expect(q.finish(first[0]!.id, 'b', null, { status: 'delivered', next_attempt_at: 0, provider: 'p', last_error: null }, 1200)).to.equal(true);
    expect(q.get(ids[1]!)!.body_id).to.be.a('string');
    expect(q.finish(ids[1]!, 'b', null, { status: 'bounced', next_attempt_at: 0, provider: 'p', last_error: '550' }, 1200)).to.equal(true);
    expect(ids.map((id) => q.get(id)!.body_id)).to.deep.equal([null, null]);
    expect(db.prepare('SELECT count(*) AS n FROM mail_bodies').get()).to.deep.equal({ n: 0 });
    db.close();
  });

  it('message and body ids: 16 hex characters that sort in the order they were made, so the id indexes grow at their end', () => {
    const db = openDb(tmp.dir);
    const q = new MessageStore(db);
    const before = Date.now();
    // 3,000 inserts span several milliseconds and many ids within one.
    const ids = Array.from({ length: 1000 }, () => q.enqueue({ account: 'app', mailFrom: 'a@example.com', rcptTo: ['x@example.org', 'y@example.net', 'z@example.com'], raw: Buffer.from('body') }, 0)).flat();
    const bodies = (db.prepare('SELECT id FROM mail_bodies ORDER BY rowid').all() as { id: string }[]).map((r) => r.id);
    for (const list of [ids, bodies]) {
      for (const id of list) expect(id).to.match(/^[0-9a-f]{16}$/);
      expect([...list].sort(), 'made in order').to.deep.equal(list);
      expect(new Set(list).size, 'unique').to.equal(list.length);
    }
    expect(parseInt(ids[0]!.slice(0, 11), 16), 'the first 11 characters: the time in ms').to.be.within(before, Date.now());
    db.close();
  });

  it('the id maker: the counter goes on within a millisecond and past it, and a clock that steps back changes nothing', () => {
    let clock = 0x123;
    const next = idMaker(() => clock, () => 0xffffe);
    const ids = [next(), next(), next()]; // 0xffffe, 0xfffff, then the next millisecond
    clock = 0x100; // stepped back
    ids.push(next());
    clock = 0x200;
    ids.push(next());
    expect(ids).to.deep.equal(['00000000123ffffe', '00000000123fffff', '00000000124ffffe', '00000000124fffff', '00000000200ffffe']);
  });

  it('certificate serials are minimal DER integers (a random serial starting with 0x00 once made OpenSSL refuse the certificate)', () => {
    const cases: [number[], string][] = [
      [[0x00, 0x12, 0x34], '02021234'],
      [[0x00, 0x00, 0x92], '02020092'],
      [[0x7f, 0xff], '02027fff'],
      [[0x80], '02020080'],
      [[0x00], '020100'],
    ];
    for (const [bytes, hex] of cases) expect(derInt(Buffer.from(bytes)).toString('hex'), bytes.join(',')).to.equal(hex);
  });

  it('STARTTLS certificate: self-signed for the host name, kept across starts, made again for a new name', async () => {
    const first = await loadTls({ dataDir: tmp.dir, hostname: 'relay.example.net' });
    expect(first.generated).to.equal(true);
    const x = new X509Certificate(first.cert);
    expect(x.subjectAltName).to.equal('DNS:relay.example.net');
    expect(x.verify(x.publicKey)).to.equal(true);
    expect(x.checkPrivateKey(createPrivateKey(first.key))).to.equal(true);
    expect(readFileSync(join(tmp.dir, 'mail', 'tls', 'cert.pem'), 'utf8')).to.equal(first.cert);
    const again = await loadTls({ dataDir: tmp.dir, hostname: 'relay.example.net' });
    expect(again).to.deep.include({ generated: false, cert: first.cert });
    const renamed = await loadTls({ dataDir: tmp.dir, hostname: 'mx.example.net' });
    expect(renamed.generated).to.equal(true);
    expect(new X509Certificate(renamed.cert).subjectAltName).to.equal('DNS:mx.example.net');
  });
});
