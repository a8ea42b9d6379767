// `dnsproxy mail serve` as supervisord runs it: settings from flags over env, a message submitted
// to the process reaches the provider, SIGTERM lets an open session finish, then exit 0.
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import nodemailer from 'nodemailer';
import { MailStore } from '../../src/mail/store.js';
import { openDb } from '../../src/store/db.js';
import { tempDir } from '../helpers/tmp.js';
import { ACCOUNT, HOSTNAME, eventually, mail, raw, sink, type Sink } from './helpers.js';

const ENTRY = fileURLToPath(new URL('./cli-entry.ts', import.meta.url));

interface Proc {
  proc: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
}

function run(args: string[], env: Record<string, string>): Proc {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DNSPROXY_')));
  const proc = spawn(process.execPath, ['--import', 'tsx', ENTRY, ...args], { env: { ...inherited, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (out += c.toString()));
  return { proc, out: () => out, exited: new Promise((resolve) => proc.once('exit', (code) => resolve(code))) };
}

describe('mail: `dnsproxy mail serve`', function () {
  let tmp: ReturnType<typeof tempDir>;
  let provider: Sink;
  let p: Proc | undefined;

  beforeEach(async () => {
    tmp = tempDir('dnsproxy-mail-serve-');
    provider = sink();
    await provider.listen();
  });

  afterEach(async () => {
    if (p && p.proc.exitCode === null && p.proc.signalCode === null) {
      p.proc.kill('SIGKILL');
      await p.exited;
    }
    p = undefined;
    await provider.close();
    tmp.cleanup();
  });

  it('serves with flags over env, delivers what it accepted, and on SIGTERM lets an open session finish before exiting 0', async () => {
    // The controller's side: settings written to the shared SQLite file before the relay starts.
    const db = openDb(tmp.dir);
    const store = new MailStore(db);
    await store.addAccount(ACCOUNT);
    store.putProvider({ name: 'sink', config: { type: 'smtp', host: '127.0.0.1', port: provider.port, security: 'starttls', tls_verify: false, allow_private: true } });
    store.addRule({ priority: 1, sender_domain: null, recipient_domain: null, account: null, provider: 'sink', fallback_provider: null });
    db.close();

    // Port 1 from the environment would fail (privileged); the flags win.
    p = run(['mail', 'serve', '--data-dir', tmp.dir, '--smtp-port', '0', '--submission-port', '0', '--smtps-port', '0', '--listen-ip', '127.0.0.1'], {
      DNSPROXY_SMTP_PORT: '1',
      DNSPROXY_SUBMISSION_PORT: '1',
      DNSPROXY_SMTPS_PORT: '1',
      DNSPROXY_MAIL_HOSTNAME: HOSTNAME,
      DNSPROXY_LOG_LEVEL: 'info',
    });
    const started = await eventually(() => p!.out().split('\n').find((l) => l.includes('"mail relay started"')), 20_000, `the relay to start; output:\n${p.out()}`);
    const { submission, smtp, smtps } = JSON.parse(started) as { submission: string; smtp: string; smtps: string };
    const port = Number(submission.split(':').pop());
    expect(Number(smtp.split(':').pop())).to.be.above(1).and.not.equal(port);
    expect(Number(smtps.split(':').pop()), 'the implicit-TLS listener').to.be.above(1).and.not.equal(port);

    const cert = readFileSync(join(tmp.dir, 'mail', 'tls', 'cert.pem'), 'utf8');
    const client = nodemailer.createTransport({ host: '127.0.0.1', port, requireTLS: true, tls: { ca: cert, servername: HOSTNAME }, auth: { user: ACCOUNT.name, pass: ACCOUNT.password } });
    await client.sendMail(mail({ subject: 'through the process' }));
    await eventually(() => provider.received[0], 5000, 'the sink to receive it');
    expect(provider.received[0]!.raw.toString()).to.include('Subject: through the process');

    // A session in the middle of a transaction when SIGTERM arrives still gets its 250.
    const plain = await raw(port);
    await plain.reply();
    plain.send('EHLO client.example.com');
    await plain.reply();
    plain.send('STARTTLS');
    await plain.reply();
    const s = await plain.upgrade(cert);
    s.send('EHLO client.example.com');
    await s.reply();
    s.send(`AUTH PLAIN ${Buffer.from(`\0${ACCOUNT.name}\0${ACCOUNT.password}`).toString('base64')}`);
    expect(await s.reply()).to.match(/^235 /);
    s.send('MAIL FROM:<app@example.com>');
    await s.reply();
    s.send('RCPT TO:<drain@example.org>');
    await s.reply();
    s.send('DATA');
    expect(await s.reply()).to.match(/^354 /);
    p.proc.kill('SIGTERM');
    await eventually(() => p!.out().includes('"stopping'), 5000, 'the stop log line');
    s.send('Subject: during shutdown\r\n\r\nstill accepted\r\n.');
    expect(await s.reply()).to.match(/^250 2\.0\.0 Ok: queued as /);
    s.send('QUIT');
    expect(await p.exited).to.equal(0);

    // It was committed before the 250: the next start (or this one, had it stayed) delivers it.
    const check = openDb(tmp.dir);
    const row = check.prepare(`SELECT rcpt_to FROM mail_messages WHERE rcpt_to LIKE '%drain@%'`).get() as { rcpt_to: string } | undefined;
    check.close();
    expect(row?.rcpt_to).to.equal('["drain@example.org"]');
  });

  it('runs with umask 077 and keeps the data dir private: a loose one tightened, its TLS key and certificate 0600', async () => {
    const data = join(tmp.dir, 'data');
    openDb(data).close();
    chmodSync(data, 0o755);
    chmodSync(join(data, 'dnsproxy.sqlite'), 0o644);
    // A temporary file left by a crash while the key was being written.
    mkdirSync(join(data, 'mail', 'tls'), { recursive: true, mode: 0o755 });
    writeFileSync(join(data, 'mail', 'tls', 'key.pem.tmp'), 'half a key', { mode: 0o644 });
    chmodSync(join(data, 'mail'), 0o755);
    chmodSync(join(data, 'mail', 'tls'), 0o755);
    p = run(['mail', 'serve', '--data-dir', data, '--smtp-port', '0', '--submission-port', '0', '--listen-ip', '127.0.0.1'], { DNSPROXY_MAIL_HOSTNAME: HOSTNAME, DNSPROXY_LOG_LEVEL: 'info' });
    await eventually(() => p!.out().includes('"mail relay started"'), 20_000, `the relay to start; output:\n${p.out()}`);
    expect(readFileSync(`/proc/${p.proc.pid}/status`, 'utf8')).to.match(/^Umask:\s+0077$/m);
    const mode = (f: string) => [f, statSync(join(data, f)).mode & 0o777];
    const want: [string, number][] = [['.', 0o700], ['dnsproxy.sqlite', 0o600], ['dnsproxy.sqlite-wal', 0o600], ['dnsproxy.sqlite-shm', 0o600], ['mail', 0o700], ['mail/tls', 0o700], ['mail/tls/key.pem', 0o600], ['mail/tls/cert.pem', 0o600]];
    expect(want.map(([f]) => mode(f))).to.deep.equal(want);
    expect(p.out()).to.include('permissions tightened');
    expect(() => statSync(join(data, 'mail', 'tls', 'key.pem.tmp'))).to.throw(/ENOENT/);
    p.proc.kill('SIGTERM');
    expect(await p.exited).to.equal(0);
  });

  it('a SIGTERM that comes while it is still starting stops it once started: exit 0, not death by the signal', async () => {
    p = run(['mail', 'serve', '--data-dir', tmp.dir, '--smtp-port', '0', '--submission-port', '0', '--listen-ip', '127.0.0.1'], { DNSPROXY_MAIL_HOSTNAME: HOSTNAME, DNSPROXY_LOG_LEVEL: 'info' });
    // The certificate is made early in the start, before the queue threads run (hundreds of ms under tsx).
    await eventually(() => p!.out().includes('generated a self-signed STARTTLS certificate'), 20_000, `the start under way; output:\n${p.out()}`);
    expect(p.out()).not.to.include('"mail relay started"');
    p.proc.kill('SIGTERM');
    expect(await p.exited, p.out()).to.equal(0);
    expect(p.out()).to.include('"mail relay started"').and.include('"stopping');
  });

  it('a port already taken exits 1 naming it and the flags that choose ports', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const port = (taken.address() as AddressInfo).port;
      p = run(['mail', 'serve', '--data-dir', tmp.dir, '--smtp-port', '0', '--submission-port', String(port), '--listen-ip', '127.0.0.1'], { DNSPROXY_MAIL_HOSTNAME: HOSTNAME });
      expect(await p.exited, p.out()).to.equal(1);
      expect(p.out()).to.match(/cannot listen: .*EADDRINUSE.* \(choose other ports with --smtp-port\/--submission-port\/--smtps-port\)/);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('mail_dns_servers naming our own DNS server while upstreams is empty exits 2 saying why (every outside check would be temperror)', async () => {
    p = run(['mail', 'serve', '--data-dir', tmp.dir, '--smtp-port', '0', '--submission-port', '0', '--listen-ip', '127.0.0.1'], { DNSPROXY_MAIL_DNS_SERVERS: '127.0.0.1:53' });
    expect(await p.exited, p.out()).to.equal(2);
    expect(p.out()).to.include("mail_dns_servers: 127.0.0.1:53 is this node's own DNS server, which answers only its own zones while upstreams is empty");
    p = run(['mail', 'serve', '--data-dir', tmp.dir, '--smtp-port', '0', '--submission-port', '0', '--listen-ip', '127.0.0.1'], { DNSPROXY_MAIL_DNS_SERVERS: '127.0.0.1:53', DNSPROXY_UPSTREAMS: '192.0.2.53', DNSPROXY_MAIL_HOSTNAME: HOSTNAME, DNSPROXY_LOG_LEVEL: 'info' });
    await eventually(() => p!.out().includes('"mail relay started"'), 20_000, `started with upstreams set; output:\n${p.out()}`);
    p.proc.kill('SIGTERM');
    expect(await p.exited, p.out()).to.equal(0);
  });

  it('a bad setting exits 2 with one line naming the field and where it came from', async () => {
    p = run(['mail', 'serve', '--data-dir', tmp.dir, '--submission-port', '70000'], { DNSPROXY_MAIL_MAX_SIZE: '-5' });
    expect(await p.exited).to.equal(2);
    expect(p.out()).to.include('submission_port: must be 0-65535 (from --submission-port)').and.include('mail_max_size').and.include('(from env DNSPROXY_MAIL_MAX_SIZE)');
  });
});
