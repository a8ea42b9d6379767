// Setting up `mx` and `http` providers as an admin does: through the API (inject()) and the CLI
// (a real process against the API on a loopback port). API keys are write-only.
import { expect } from 'chai';
import { apiFixture, type ApiFixture } from '../helpers/api.js';
import { listenApi, runCli } from './cli-run.js';

describe('mail: mx and http providers in the API and the CLI', function () {
  let f: ApiFixture;
  let url: string;

  before(async () => {
    f = await apiFixture();
    url = await listenApi(f);
  });
  after(async () => f.close());

  const call = (method: 'GET' | 'PUT', path: string, payload?: unknown) =>
    f.app.inject({ method, url: path, headers: f.auth, ...(payload === undefined ? {} : { payload: payload as object }) });

  const cli = (args: string[], stdin = '') => runCli({ url, token: f.token }, args, stdin);

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
