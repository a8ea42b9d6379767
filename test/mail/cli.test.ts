// `dnsproxy mail account|provider|rule|dkim|queue` against a real controller API on a loopback
// port: what the admin types and reads.
import { expect } from 'chai';
import { MessageStore } from '../../src/mail/queue/messages.js';
import type { ApiFixture } from '../helpers/api.js';
import { eachCliApi } from './cli-run.js';

describe('mail: admin CLI', function () {
  let f: ApiFixture;
  const cli = eachCliApi((made) => {
    f = made;
  });

  it('sets up an account (password from stdin), a provider, a rule and a DKIM key, and lists them', async () => {
    const add = await cli(['mail', 'account', 'add', 'app', '--email', 'app@example.com', '--domain', 'example.com', '--domain', 'example.net'], 'correct horse battery\n');
    expect(add, add.stderr).to.include({ code: 0, stdout: 'added account app (example.com, example.net)\n' });
    expect((await cli(['mail', 'account', 'add', 'nopass', '--email', 'n@example.com', '--domain', 'example.com'], ''))).to.include({ code: 2 });

    const prov = await cli(['mail', 'provider', 'add', 'isp', 'smtp.example.net:587', '--user', 'relay'], 's3cret-pass\n');
    expect(prov, prov.stderr).to.include({ code: 0, stdout: 'saved provider isp (smtp.example.net:587, starttls, ≤ 2 connections)\n' });
    const providers = await cli(['mail', 'provider', 'list']);
    expect(providers.stdout).to.match(/^isp\s+smtp\s+smtp\.example\.net:587\s+starttls\s+relay$/m).and.not.include('s3cret');

    const rule = await cli(['mail', 'rule', 'add', 'isp', '--recipient-domain', 'example.org', '--priority', '10']);
    expect(rule.stdout).to.match(/^added rule [0-9a-f]{8}\n$/);
    const unknown = await cli(['mail', 'rule', 'add', 'nope']);
    expect(unknown.code).to.equal(1);
    expect(unknown.stderr).to.include('no provider named nope');
    expect((await cli(['mail', 'rule', 'list'])).stdout).to.match(/^[0-9a-f]{8}\s+10\s+\*\s+\*\s+example\.org\s+isp\s+-$/m);

    const dkim = await cli(['mail', 'dkim', 'create', 'example.com']);
    expect(dkim.stdout).to.match(/^dnsproxy\._domainkey\.example\.com\. TXT "v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]+"\n$/);
  });

  it('an http provider made through the API gets the same auth defaults as one made with the CLI (model HTTP_AUTH_DEFAULTS)', async () => {
    const stored = (name: string) => f.mail.deps.store.provider(name)?.config;
    for (const [format, secretField, expected] of [
      ['postmark', 'value', { scheme: 'header', name: 'X-Postmark-Server-Token', value: 'k-1' }],
      ['mailgun', 'pass', { scheme: 'basic', user: 'api', pass: 'k-1' }],
      ['sendgrid', 'token', { scheme: 'bearer', token: 'k-1' }],
    ] as const) {
      const viaCli = await cli(['mail', 'provider', 'add', `cli-${format}`, 'https://api.example.com/send', '--type', 'http', '--format', format], 'k-1\n');
      expect(viaCli, viaCli.stderr).to.include({ code: 0 });
      const viaApi = await f.app.inject({ method: 'PUT', url: `/api/v1/mail/providers/api-${format}`, headers: f.auth, payload: { type: 'http', format, url: 'https://api.example.com/send', auth: { [secretField]: 'k-1' } } });
      expect(viaApi.statusCode, viaApi.body).to.equal(201);
      expect(stored(`api-${format}`)).to.deep.equal(stored(`cli-${format}`));
      expect(stored(`api-${format}`)).to.deep.include({ auth: expected });
    }
    // A format without a default scheme (raw) still needs one: 400 naming the field.
    const raw = await f.app.inject({ method: 'PUT', url: '/api/v1/mail/providers/api-raw', headers: f.auth, payload: { type: 'http', format: 'raw', url: 'https://api.example.com/send', auth: { token: 'k-1' } } });
    expect(raw.statusCode).to.equal(400);
    expect(raw.body).to.include('auth.scheme');
  });

  it('mail queue lists messages and shows one', async () => {
    const [id] = new MessageStore(f.db).enqueue({ account: 'app', mailFrom: 'app@example.com', rcptTo: ['a@example.org'], raw: Buffer.from('x') }, Date.now());
    expect((await cli(['mail', 'queue'])).stdout).to.match(new RegExp(`^${id}\\s+queued\\s+app@example\\.com\\s+a@example\\.org\\s+0\\s+-`, 'm'));
    const one = await cli(['--json', 'mail', 'queue', id!]);
    expect(JSON.parse(one.stdout)).to.deep.include({ deliveries: [] });
  });

  it('mail hold / release / retry / log / delete: one line each (--json: the API answer); 1 for an unknown or final message, 2 without an id', async () => {
    const q = new MessageStore(f.db);
    const [id] = q.enqueue({ account: 'app', mailFrom: 'app@example.com', rcptTo: ['b@example.org'], raw: Buffer.from('x') }, Date.now());
    expect(await cli(['mail', 'hold', id!])).to.include({ code: 0, stdout: `${id} is held\n` });
    expect((await cli(['mail', 'queue', '--status', 'held'])).stdout).to.match(new RegExp(`^${id}\\s+held\\s`, 'm'));
    expect(await cli(['mail', 'release', id!])).to.include({ code: 0, stdout: `${id} is queued again, due now\n` });
    const released = await cli(['mail', 'release', id!]);
    expect(released.code).to.equal(1);
    expect(released.stderr).to.equal(`dnsproxy: message ${id}: it is queued, not held (conflict, HTTP 409)\n`);
    const retry = await cli(['--json', 'mail', 'retry', id!]);
    expect(retry.code).to.equal(0);
    expect(JSON.parse(retry.stdout).message).to.include({ id, status: 'queued' });

    expect(await cli(['mail', 'log', id!])).to.include({ code: 0, stdout: 'no delivery attempts yet\n' });
    q.claim('relay', 10, Date.now(), 60_000);
    q.finish(id!, 'relay', { provider: 'isp', outcome: 'permanent', code: 550, response: '550 5.1.1 no such user', duration_ms: 34 }, { status: 'bounced', next_attempt_at: Date.now(), provider: 'isp', last_error: 'isp: 550' }, Date.now());
    const log = await cli(['mail', 'log', id!]);
    expect(log.stdout).to.match(/^TIME\s+PROVIDER\s+OUTCOME\s+CODE\s+MS\s+RESPONSE\n\d{4}-\d\d-\d\dT[\d:.]+Z\s+isp\s+permanent\s+550\s+34\s+550 5\.1\.1 no such user\n$/);
    expect(JSON.parse((await cli(['--json', 'mail', 'log', id!])).stdout).deliveries).to.have.length(1);
    const final = await cli(['mail', 'retry', id!]);
    expect(final.code).to.equal(1);
    expect(final.stderr).to.include('bounced, which is final');

    expect(await cli(['mail', 'delete', id!])).to.include({ code: 0, stdout: `deleted ${id}\n` });
    const gone = await cli(['mail', 'log', id!]);
    expect(gone).to.include({ code: 1, stderr: `dnsproxy: no message ${id} (not_found, HTTP 404)\n` });
    expect((await cli(['--json', 'mail', 'delete', id!])).code).to.equal(1);
    expect((await cli(['mail', 'retry'])).code).to.equal(2);
  });
});
