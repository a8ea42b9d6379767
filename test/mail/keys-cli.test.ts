// `dnsproxy mail account key …|rotate-key` and `dnsproxy mail cert` against a real controller API
// on a loopback port: what the admin types and reads. The relay's own check (Authenticator) on the
// same database says whether a key works.
import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Authenticator } from '../../src/mail/credentials/auth.js';
import { selfSignedCert } from '../../src/mail/credentials/cert.js';
import { MailStore } from '../../src/mail/store.js';
import type { ApiFixture } from '../helpers/api.js';
import { eachCliApi } from './cli-run.js';
import { tempDir } from '../helpers/tmp.js';
import { ACCOUNT, HOSTNAME } from './helpers.js';

const KEY_LINE = /^dpk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}\n$/;

describe('mail: admin CLI for API keys and the certificate', function () {
  let f: ApiFixture;
  let store: MailStore;
  let files: ReturnType<typeof tempDir>;

  const cli = eachCliApi(async (made) => {
    f = made;
    store = new MailStore(f.db);
    await store.addAccount(ACCOUNT);
    files = tempDir('dnsproxy-cert-files-');
  });
  after(() => files?.cleanup());

  it('key add and rotate-key print the new key alone on stdout; the old key works through the grace and then stops; list never shows a key; revoke', async () => {
    const added = await cli(['mail', 'account', 'key', 'add', 'app', '--label', 'ci']);
    expect(added, added.stderr).to.include({ code: 0 });
    expect(added.stdout).to.match(KEY_LINE);
    expect(added.stderr).to.match(/^new key [0-9a-f]{12} \(ci\) for account app; shown once, store it now:\n$/);
    const oldKey = added.stdout.trim();

    const rotated = await cli(['mail', 'account', 'rotate-key', 'app', '--keep-old', '2s']);
    expect(rotated, rotated.stderr).to.include({ code: 0 });
    expect(rotated.stdout).to.match(KEY_LINE);
    const newKey = rotated.stdout.trim();
    expect(newKey).not.to.equal(oldKey);
    const until = /\nold key [0-9a-f]{12} \(ci\), works until (\d{4}-\d\d-\d\dT[\d:.]+Z)\n$/.exec(rotated.stderr)?.[1];
    expect(until, rotated.stderr).to.be.a('string');
    const end = Date.parse(until!);
    expect(end - Date.now()).to.be.within(0, 2000);

    // The authenticator's clock is the test's: the last ms of the grace, then its end (no 2 s sleep).
    let now = end - 1;
    const auth = new Authenticator(store, { now: () => now });
    try {
      expect((await auth.verify('app', oldKey))?.account.name, 'old key within the grace').to.equal('app');
      expect((await auth.verify('app', newKey))?.account.name).to.equal('app');
      now = end;
      expect(await auth.verify('app', oldKey), 'old key after the grace').to.equal(undefined);
      expect((await auth.verify('app', newKey))?.account.name).to.equal('app');
    } finally {
      auth.close();
    }

    // The API lists by the wall clock: wait for the instant the grace ends (load only makes it later).
    while (Date.now() <= end) await new Promise((r) => setTimeout(r, end + 1 - Date.now()));
    const list = await cli(['mail', 'account', 'key', 'list', 'app']);
    expect(list.code).to.equal(0);
    expect(list.stdout).to.match(/^ID\s+LABEL\s+STATE\s+CREATED\s+LAST USED\s+EXPIRES\n/);
    expect(list.stdout).to.match(/^[0-9a-f]{12}\s+ci\s+expired\s/m).and.to.match(/^[0-9a-f]{12}\s+rotated \d{4}-\d\d-\d\d\s+active\s/m);
    expect(list.stdout).not.to.include(oldKey).and.not.to.include(newKey).and.not.to.include('dpk_');
    const json = await cli(['--json', 'mail', 'account', 'key', 'list', 'app']);
    expect(json.stdout).not.to.include('dpk_').and.not.to.include('hash');

    const newId = newKey.slice(4, 16);
    expect(await cli(['mail', 'account', 'key', 'revoke', 'app', newId])).to.include({ code: 0, stdout: `revoked key ${newId} of account app\n` });
    const again = await cli(['mail', 'account', 'key', 'revoke', 'app', newId]);
    expect(again.code).to.equal(1);
    expect(again.stderr).to.include(`key ${newId} of account app was already revoked at `);
    const bad = await cli(['mail', 'account', 'rotate-key', 'app', '--keep-old', '1w']);
    expect(bad.code).to.equal(1);
    expect(bad.stderr).to.include('keep_old').and.include('HTTP 400');
  });

  it('a revoked key stays listed as revoked (with when); revoking it again is a 409, an unknown key a 404', async function () {
    this.timeout(60_000); // five CLI runs, each a tsx start
    const added = await cli(['mail', 'account', 'key', 'add', 'app', '--label', 'to-revoke']);
    const id = added.stdout.trim().slice(4, 16);
    expect(await cli(['mail', 'account', 'key', 'revoke', 'app', id])).to.include({ code: 0 });
    const list = await cli(['mail', 'account', 'key', 'list', 'app']);
    expect(list.stdout).to.match(new RegExp(`^${id}\\s+to-revoke\\s+revoked\\s`, 'm'));
    const revoked = JSON.parse((await cli(['--json', 'mail', 'account', 'key', 'list', 'app'])).stdout).keys.find((k: { id: string }) => k.id === id);
    expect(revoked).to.include({ state: 'revoked' });
    expect(revoked.revoked_at).to.match(/^\d{4}-\d\d-\d\dT[\d:.]+Z$/);
    const again = await cli(['mail', 'account', 'key', 'revoke', 'app', id]);
    expect(again.code).to.equal(1);
    expect(again.stderr).to.include(`key ${id} of account app was already revoked at ${revoked.revoked_at} (conflict, HTTP 409)`);
    expect((await cli(['mail', 'account', 'key', 'revoke', 'app', '0123456789ab'])).stderr).to.include('account app has no key 0123456789ab (not_found, HTTP 404)');
  });

  it('mail cert: a mismatched key exits 1 with the reason; a valid pair is set and shown (subject, expiry, fingerprint); no arguments shows it again', async () => {
    const [pair, other] = await Promise.all([selfSignedCert(HOSTNAME, new Date()), selfSignedCert(HOSTNAME, new Date())]);
    const at = (name: string, text: string) => {
      const p = join(files.dir, name);
      writeFileSync(p, text);
      return p;
    };
    const cert = at('cert.pem', pair.cert);
    const mismatched = await cli(['mail', 'cert', '--cert', cert, '--key', at('other.key', other.key)]);
    expect(mismatched.code).to.equal(1);
    expect(mismatched.stderr).to.match(/^dnsproxy: key: the private key does not match the certificate .* \(invalid_body, HTTP 400\)\n$/);
    expect(await cli(['mail', 'cert', '--cert', cert])).to.include({ code: 2 });

    const set = await cli(['mail', 'cert', '--cert', cert, '--key', at('key.pem', pair.key)]);
    expect(set, set.stderr).to.include({ code: 0 });
    const fp = new (await import('node:crypto')).X509Certificate(pair.cert).fingerprint256;
    expect(set.stdout).to.include('not presented yet').and.include(`subject:  CN=${HOSTNAME}`).and.include(`sha256:   ${fp}`).and.match(/valid: {4}\S+ → \S+Z\n/);
    expect(set.stdout).not.to.include('PRIVATE KEY');
    const shown = await cli(['mail', 'cert']);
    expect(shown.stdout).to.include(`sha256:   ${fp}`);
  });
});
