// Setting up `mx` and `http` providers as an admin does: through the API (inject()) and the CLI
// (a real process against the API on a loopback port). API keys are write-only.
import { expect } from 'chai';
import { NODE_IP, type ApiFixture } from '../helpers/api.js';
import { eachCliApi } from './cli-run.js';

describe('mail: mx and http providers in the API and the CLI', function () {
  let f: ApiFixture;
  const cli = eachCliApi((made) => {
    f = made;
  });

  const call = (method: 'GET' | 'PUT', path: string, payload?: unknown) =>
    f.app.inject({ method, url: path, headers: f.auth, ...(payload === undefined ? {} : { payload: payload as object }) });


  it('API: an mx provider gets port 25 by default; an http provider\'s key is never returned', async () => {
    const mx = await call('PUT', '/api/v1/mail/providers/direct', { type: 'mx' });
    expect(mx.statusCode).to.equal(201);
    expect(mx.json().provider).to.deep.equal({ name: 'direct', config: { type: 'mx', port: 25 } });

    const http = await call('PUT', '/api/v1/mail/providers/pm', { type: 'http', format: 'postmark', url: 'https://api.postmarkapp.com/email', auth: { scheme: 'header', name: 'X-Postmark-Server-Token', value: 'pm-secret-token' } });
    expect(http.statusCode).to.equal(201);
    expect(http.json().provider.config).to.deep.equal({ type: 'http', format: 'postmark', url: 'https://api.postmarkapp.com/email', auth: { scheme: 'header', name: 'X-Postmark-Server-Token' } });
    const list = await call('GET', '/api/v1/mail/providers');
    expect(list.body).to.include('"pm"').and.not.include('pm-secret-token');
    expect(f.db.prepare("SELECT config FROM mail_providers WHERE name = 'pm'").pluck().get()).to.include('pm-secret-token'); // the relay needs it
  });

  it('API: bad provider configs are 400 naming each field', async () => {
    const bad = await call('PUT', '/api/v1/mail/providers/bad', { type: 'http', format: 'ses', url: 'ftp://example.net/', auth: { scheme: 'bearer' } });
    expect(bad.statusCode).to.equal(400);
    expect(bad.json().error.fields.map((x: { path: string }) => x.path).sort()).to.deep.equal(['auth.token', 'format', 'url']);
    const port = await call('PUT', '/api/v1/mail/providers/bad', { type: 'mx', port: 0 });
    expect(port.statusCode).to.equal(400);
    expect(port.json().error.fields.map((x: { path: string }) => x.path)).to.deep.equal(['port']);
    const type = await call('PUT', '/api/v1/mail/providers/bad', { type: 'carrier-pigeon' });
    expect(type.statusCode).to.equal(400);
    expect(type.json().error.fields.map((x: { path: string }) => x.path)).to.deep.equal(['type']);
  });

  it('API: a provider at this host (loopback, metadata, localhost, this node) is 400 naming the field unless allow_private; nothing is saved', async () => {
    const refused: [object, string][] = [
      [{ type: 'http', format: 'raw', url: 'http://127.0.0.1:2019/stop' }, 'url'],
      [{ type: 'http', format: 'raw', url: 'http://169.254.169.254/latest/meta-data/' }, 'url'],
      [{ type: 'smtp', host: 'localhost', port: 25 }, 'host'],
      [{ type: 'smtp', host: '::1', port: 25 }, 'host'],
      [{ type: 'smtp', host: NODE_IP, port: 8080 }, 'host'], // this node's own address
    ];
    for (const [config, path] of refused) {
      const res = await call('PUT', '/api/v1/mail/providers/inside', config);
      expect(res.statusCode, JSON.stringify(config)).to.equal(400);
      expect(res.json().error).to.deep.include({ code: 'invalid_body' });
      expect(res.json().error.fields.map((x: { path: string; message: string }) => [x.path, /allow_private: true$/.test(x.message)])).to.deep.equal([[path, true]]);
    }
    expect((await call('GET', '/api/v1/mail/providers')).json().providers.map((p: { name: string }) => p.name)).not.to.include('inside');
    const allowed = await call('PUT', '/api/v1/mail/providers/inside', { type: 'smtp', host: '127.0.0.1', port: 2525, security: 'none', allow_private: true });
    expect(allowed.statusCode).to.equal(201);
    expect(allowed.json().provider.config).to.include({ host: '127.0.0.1', allow_private: true });
  });

  it('API: an smtp host that is no host name or IP address is 400 naming host', async () => {
    for (const host of ['a..b', '[::1]', '-x.example', '127.1', '0x7f000001', 'fe80::1%eth0']) {
      const res = await call('PUT', '/api/v1/mail/providers/junk', { type: 'smtp', host, port: 25, allow_private: true });
      expect(res.statusCode, host).to.equal(400);
      expect(res.json().error.fields.map((x: { path: string }) => x.path), host).to.deep.equal(['host']);
    }
  });

  it('CLI: provider add --type mx / --type http (key from stdin, auth by format) and provider list', async () => {
    const mx = await cli(['mail', 'provider', 'add', 'direct2', '--type', 'mx', '--port', '2525']);
    expect(mx, mx.stderr).to.include({ code: 0, stdout: "saved provider direct2 (direct to each domain's MX hosts, port 2525)\n" });
    const sg = await cli(['mail', 'provider', 'add', 'sg', 'https://api.sendgrid.com/v3/mail/send', '--type', 'http', '--format', 'sendgrid'], 'SG.secret-key\n');
    expect(sg, sg.stderr).to.include({ code: 0, stdout: 'saved provider sg (sendgrid API at https://api.sendgrid.com/v3/mail/send, bearer auth)\n' });
    const mg = await cli(['mail', 'provider', 'add', 'mg', 'https://api.mailgun.net/v3/mg.example.com/messages.mime', '--type', 'http', '--format', 'mailgun', '--pass', 'key-mg']);
    expect(mg.code, mg.stderr).to.equal(0);
    const stored = (await call('GET', '/api/v1/mail/providers')).json().providers as { name: string; config: object }[];
    expect(stored.find((p) => p.name === 'mg')!.config).to.deep.equal({ type: 'http', format: 'mailgun', url: 'https://api.mailgun.net/v3/mg.example.com/messages.mime', auth: { scheme: 'basic', user: 'api' } });

    const list = await cli(['mail', 'provider', 'list']);
    expect(list.stdout).to.match(/^direct2\s+mx\s+MX hosts:2525\s+starttls if offered\s+-$/m);
    expect(list.stdout).to.match(/^sg\s+http\s+https:\/\/api\.sendgrid\.com\/v3\/mail\/send\s+sendgrid\s+bearer$/m);
    expect(list.stdout).to.match(/^mg\s+http\s+\S+messages\.mime\s+mailgun\s+basic api$/m);
    expect(list.stdout).not.to.include('SG.secret-key').and.not.include('key-mg');
  });

  it('CLI: provider add --allow-private for a smarthost on this host; without it the API\'s 400 names the field (exit 1)', async () => {
    const refused = await cli(['mail', 'provider', 'add', 'local', '127.0.0.1:2525', '--security', 'none']);
    expect(refused.code).to.equal(1);
    expect(refused.stderr).to.include('host: 127.0.0.1 is a loopback address (this host): the relay does not connect there unless the provider sets allow_private: true');
    const ok = await cli(['mail', 'provider', 'add', 'local', '127.0.0.1:2525', '--security', 'none', '--allow-private']);
    expect(ok, ok.stderr).to.include({ code: 0, stdout: 'saved provider local (127.0.0.1:2525, none, ≤ 2 connections, private addresses allowed)\n' });
    const list = await cli(['mail', 'provider', 'list']);
    expect(list.stdout).to.match(/^local\s+smtp\s+127\.0\.0\.1:2525\s+none, private allowed\s+-$/m);
  });

  it('CLI: usage errors exit 2 before anything is sent', async () => {
    const noFormat = await cli(['mail', 'provider', 'add', 'x', 'https://api.example.net/send', '--type', 'http'], 'k\n');
    expect(noFormat).to.include({ code: 2 });
    expect(noFormat.stderr).to.include('--format: expected sendgrid, postmark, mailgun, raw');
    const mxTarget = await cli(['mail', 'provider', 'add', 'x', 'mx.example.org:25', '--type', 'mx']);
    expect(mxTarget).to.include({ code: 2 });
    expect(mxTarget.stderr).to.include('an mx provider has no target');
    expect((await call('GET', '/api/v1/mail/providers')).json().providers.map((p: { name: string }) => p.name)).not.to.include('x');
  });
});
