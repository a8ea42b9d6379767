// Real SMTP on loopback ephemeral ports: a relay (MailRelay on a temp data dir, configured through
// its own SQLite handle as the controller would), sink servers standing in for providers, and a
// nodemailer client submitting over STARTTLS + AUTH.
import { existsSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { SMTPServer, type SMTPServerAddress } from 'smtp-server';
import { setLogLevel } from '../../src/log/index.js';
import { selfSignedCert } from '../../src/mail/credentials/cert.js';
import { MailRelay, type MailRelayOptions } from '../../src/mail/index.js';
import { MessageStore } from '../../src/mail/queue/messages.js';
import type { Message } from '../../src/model/mail.js';
import { MailStore } from '../../src/mail/store.js';
import { openDb, type Db } from '../../src/store/db.js';
import { tempDir } from '../helpers/tmp.js';

// Tests assert on what SMTP clients and sinks see; info lines would bury mocha's output.
setLogLevel('error');

export const HOSTNAME = 'relay.example.net';
export const ACCOUNT = { name: 'app', email: 'app@example.com', password: 'correct horse battery', allowed_domains: ['example.com'] };

// ---- sinks: the providers -----------------------------------------------------------------

export interface Received {
  from: string;
  to: string[];
  raw: Buffer;
}

export interface Sink {
  port: number;
  received: Received[];
  /** Reply to every DATA with this error instead of accepting (e.g. 550 or 451). */
  reject: { code: number; text: string } | null;
  /** Refuse these recipients (lower-case address) at RCPT TO with this reply; others are accepted. */
  rejectRcpt: Record<string, { code: number; text: string }>;
  /** Starts listening on `port` (again), e.g. to bring a "down" provider up. */
  listen(port?: number): Promise<number>;
  close(): Promise<void>;
}

let sinkTls: Promise<{ key: string; cert: string }> | undefined;

/** An SMTP server that accepts any envelope over STARTTLS (self-signed) and keeps what it got. */
export function sink(): Sink {
  const received: Received[] = [];
  let server: SMTPServer | undefined;
  const s: Sink = {
    port: 0,
    received,
    reject: null,
    rejectRcpt: {},
    async listen(port = 0) {
      const tls = await (sinkTls ??= selfSignedCert('sink.example.org', new Date()));
      const srv = (server = new SMTPServer({
        ...tls,
        authOptional: true,
        disableReverseLookup: true,
        // The relay's pooled connections stay open; close() must not wait 30 s for them.
        closeTimeout: 100,
        logger: false,
        onRcptTo(address, _session, cb) {
          const r = s.rejectRcpt[address.address.toLowerCase()];
          cb(r ? Object.assign(new Error(r.text), { responseCode: r.code }) : null);
        },
        onData(stream, session, cb) {
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('end', () => {
            if (s.reject) return cb(Object.assign(new Error(s.reject.text), { responseCode: s.reject.code }));
            const env = session.envelope;
            received.push({ from: (env.mailFrom as SMTPServerAddress).address, to: env.rcptTo.map((r) => r.address), raw: Buffer.concat(chunks) });
            cb(null, 'sink accepted');
          });
        },
      }));
      srv.on('error', () => undefined);
      await new Promise<void>((resolve, reject) => {
        srv.server.once('error', reject);
        srv.listen(port, '127.0.0.1', () => resolve());
      });
      s.port = (srv.server.address() as { port: number }).port;
      return s.port;
    },
    async close() {
      const srv = server;
      server = undefined;
      if (srv?.server.listening) await new Promise<void>((resolve) => srv.close(() => resolve()));
    },
  };
  return s;
}

/** The sinks one test starts: `start(port?)` listens (on `port` to bring a "down" provider up), `closeAll()` in afterEach. */
export function sinkSet(): { start(port?: number): Promise<Sink>; closeAll(): Promise<void> } {
  const started: Sink[] = [];
  return {
    async start(port?: number) {
      const s = sink();
      started.push(s);
      await s.listen(port);
      return s;
    },
    closeAll: async () => void (await Promise.all(started.splice(0).map((s) => s.close()))),
  };
}

/**
 * Registers in the enclosing describe an afterEach that closes the relay `relay()` returns (then `closed()`
 * lets the suite drop it) and every sink the returned `newSink(port?)` started during the test.
 */
export function eachRelayAndSinks(relay: () => RelayFixture | undefined, closed: () => void): (port?: number) => Promise<Sink> {
  const sinks = sinkSet();
  afterEach(async () => {
    await relay()?.close();
    closed();
    await sinks.closeAll();
  });
  return (port) => sinks.start(port);
}

/** A port nothing listens on (bound, then released). */
export async function deadPort(): Promise<number> {
  const s = sink();
  const port = await s.listen();
  await s.close();
  return port;
}

// ---- the relay ----------------------------------------------------------------------------

export interface RelayFixture {
  relay: MailRelay;
  dir: string;
  submissionPort: number;
  smtpPort: number;
  /** The implicit-TLS listener's port, when started with smtpsPort. */
  smtpsPort?: number;
  /** The controller's view: its own handle on the same SQLite file. */
  db: Db;
  store: MailStore;
  messages: MessageStore;
  /** The relay's self-signed certificate (PEM), for clients that verify it. */
  cert: string;
  close(): Promise<void>;
}

export const FAST: Partial<MailRelayOptions> = {
  pollMs: 20,
  leaseMs: 2000,
  fallbackAfter: 2,
  drainMs: 2000,
  closeTimeoutMs: 200,
  retry: { baseMs: 50, maxMs: 200, giveUpMs: 60_000 },
  authThrottle: { baseMs: 300, maxMs: 1000, windowMs: 60_000 },
};

export async function startRelay(over: Partial<MailRelayOptions> = {}, dir?: string): Promise<RelayFixture> {
  const tmp = dir ? { dir, cleanup: () => undefined } : tempDir('dnsproxy-mail-');
  const relay = new MailRelay({
    dataDir: tmp.dir,
    listenIp: '127.0.0.1',
    smtpPort: 0,
    submissionPort: 0,
    hostname: HOSTNAME,
    maxSize: 1024 * 1024,
    maxClients: 20,
    workers: 4,
    retry: { baseMs: 50, maxMs: 200, giveUpMs: 60_000 },
    ...FAST,
    ...over,
  });
  const ports = await relay.start();
  const db = openDb(tmp.dir);
  return {
    relay,
    dir: tmp.dir,
    ...ports,
    db,
    store: new MailStore(db),
    messages: new MessageStore(db),
    // The relay's own certificate; none when it started with one from the certificate store.
    cert: existsSync(join(tmp.dir, 'mail', 'tls', 'cert.pem')) ? readFileSync(join(tmp.dir, 'mail', 'tls', 'cert.pem'), 'utf8') : '',
    async close() {
      await relay.stop();
      db.close();
      tmp.cleanup();
    },
  };
}

/**
 * Hooks for a describe(): before each test a sink and a relay (`over`) set up by configure() to
 * deliver everything to it, handed to `use`; after it, both closed.
 */
export function relayWithSink(over: Partial<MailRelayOptions>, use: (f: { r: RelayFixture; provider: Sink }) => void): void {
  let f: { r: RelayFixture; provider: Sink } | undefined;
  beforeEach(async () => {
    const provider = sink();
    await provider.listen();
    const r = await startRelay(over);
    await configure(r, { sink: provider.port });
    use((f = { r, provider }));
  });
  afterEach(async () => {
    await f?.r.close();
    await f?.provider.close();
    f = undefined;
  });
}

/** The usual setup: the test account, one provider per sink, and a catch-all rule to the first. */
export async function configure(r: RelayFixture, providers: Record<string, number>, rule: { fallback?: string } = {}): Promise<void> {
  await r.store.addAccount(ACCOUNT);
  for (const [name, port] of Object.entries(providers))
    r.store.putProvider({ name, config: { type: 'smtp', host: '127.0.0.1', port, security: 'starttls', tls_verify: false, allow_private: true } }); // a sink on loopback
  const [first] = Object.keys(providers);
  r.store.addRule({ priority: 100, sender_domain: null, recipient_domain: null, account: null, provider: first!, fallback_provider: rule.fallback ?? null });
}

// ---- clients ------------------------------------------------------------------------------

export interface SubmitOptions {
  user?: string;
  pass?: string;
  /** false: no AUTH at all. */
  auth?: boolean;
  /** false: stay in plain text (no STARTTLS). */
  tls?: boolean;
}

/** A nodemailer client for the relay's submission port, verifying the relay's certificate. */
export function client(r: RelayFixture, o: SubmitOptions = {}) {
  return nodemailer.createTransport({
    host: '127.0.0.1',
    port: r.submissionPort,
    secure: false,
    ...(o.tls === false ? { ignoreTLS: true } : { requireTLS: true }),
    tls: { ca: r.cert, servername: HOSTNAME },
    ...(o.auth === false ? {} : { auth: { user: o.user ?? ACCOUNT.name, pass: o.pass ?? ACCOUNT.password } }),
    logger: false,
  });
}

export function mail(over: { from?: string; to?: string[]; subject?: string; text?: string } = {}) {
  return { from: over.from ?? 'app@example.com', to: over.to ?? ['rcpt@example.org'], subject: over.subject ?? 'hello', text: over.text ?? 'hello from the relay test' };
}

/** The SMTP error a send failed with (fails the test if the send succeeded). */
export async function refusal(p: Promise<unknown>): Promise<{ responseCode?: number; response?: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return e as { responseCode?: number; response?: string; message: string };
  }
  throw new Error('expected the relay to refuse, it accepted');
}

/** Polls until `probe` is truthy; fails after `ms`. */
export async function eventually<T>(probe: () => T | undefined | false, ms = 5000, what = 'condition'): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function message(r: RelayFixture, id: string): Message {
  const m = r.messages.get(id);
  if (!m) throw new Error(`no message ${id}`);
  return m;
}

/** The queue id(s) from a relay's "250 2.0.0 Ok: queued as <id>[,<id>]" reply. */
export function queuedIds(response: string): string[] {
  const m = /queued as ([0-9a-f,]+)/.exec(response);
  if (!m?.[1]) throw new Error(`no queue id in ${JSON.stringify(response)}`);
  return m[1].split(',');
}

// ---- a raw SMTP line client, for what nodemailer will not do -----------------------------

export interface RawSession {
  /** The next complete reply (all its lines). */
  reply(): Promise<string>;
  send(line: string | Buffer): void;
  /** STARTTLS was answered 220: continue over TLS, verifying the relay's certificate. */
  upgrade(ca: string): Promise<RawSession>;
  close(): void;
}

function session(socket: Socket): RawSession {
  socket.on('error', () => undefined);
  let buf = '';
  const waiting: ((s: string) => void)[] = [];
  const replies: string[] = [];
  let closed = false;
  const deliver = (r: string) => {
    const w = waiting.shift();
    if (w) w(r);
    else replies.push(r);
  };
  const onData = (d: Buffer) => {
    buf += d.toString('latin1');
    // A reply ends with a line "NNN text" (no dash after the code).
    for (let m; (m = /^(?:\d{3}-.*\r\n)*\d{3}(?: .*)?\r\n/.exec(buf)); ) {
      buf = buf.slice(m[0].length);
      deliver(m[0]);
    }
  };
  const onClose = () => {
    closed = true;
    for (const w of waiting.splice(0)) w('(closed)');
  };
  socket.on('data', onData);
  socket.on('close', onClose);
  return {
    reply: () => {
      const r = replies.shift();
      if (r !== undefined) return Promise.resolve(r);
      if (closed) return Promise.resolve('(closed)');
      return new Promise((resolve) => waiting.push(resolve));
    },
    send: (line) => socket.write(typeof line === 'string' ? `${line}\r\n` : line),
    upgrade: async (ca) => {
      socket.off('data', onData);
      socket.off('close', onClose);
      const secure = tlsConnect({ socket, ca, servername: HOSTNAME });
      await new Promise<void>((resolve, reject) => {
        secure.once('secureConnect', () => resolve());
        secure.once('error', reject);
      });
      return session(secure);
    },
    close: () => socket.destroy(),
  };
}

/** A line-level SMTP client on a new connection to `port`, from `localAddress` (another 127.x address: another client) when given. */
export async function raw(port: number, localAddress?: string): Promise<RawSession> {
  const socket = connect({ port, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  return session(socket);
}

/** Greeting, EHLO, STARTTLS, EHLO on `port`: an encrypted session, not logged in. */
export async function rawTls(r: RelayFixture, port = r.submissionPort, localAddress?: string): Promise<RawSession> {
  const plain = await raw(port, localAddress);
  await plain.reply(); // greeting
  plain.send('EHLO client.example.com');
  await plain.reply();
  plain.send('STARTTLS');
  await plain.reply();
  const s = await plain.upgrade(r.cert);
  s.send('EHLO client.example.com');
  await s.reply();
  return s;
}

/** `AUTH PLAIN` for `user` and `pass` (the test account unless given). */
export const authPlain = (user = ACCOUNT.name, pass = ACCOUNT.password) => `AUTH PLAIN ${Buffer.from(`\0${user}\0${pass}`).toString('base64')}`;

/** rawTls(), then AUTH PLAIN as the test account: a session ready for MAIL FROM. */
export async function rawAuthenticated(r: RelayFixture): Promise<RawSession> {
  const s = await rawTls(r);
  s.send(authPlain());
  const auth = await s.reply();
  if (!auth.startsWith('235')) throw new Error(`AUTH failed: ${auth}`);
  return s;
}

/** EHLO, STARTTLS, TLS handshake (no verification: we only look): the leaf the relay presented. */
export async function presentedAt(port: number): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  let buf = '';
  const reply = (re: RegExp) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (re.test(buf)) {
          socket.off('data', onData);
          buf = '';
          resolve();
        }
      };
      const onData = (d: Buffer) => {
        buf += d.toString('latin1');
        check();
      };
      socket.on('data', onData);
      socket.once('close', () => reject(new Error(`closed waiting for ${re}: ${buf}`)));
      check();
    });
  try {
    await reply(/^220 .*\r\n/m);
    socket.write('EHLO client.example.com\r\n');
    await reply(/^250 .*\r\n/m);
    socket.write('STARTTLS\r\n');
    await reply(/^220 .*\r\n/m);
    const secure = tlsConnect({ socket, servername: HOSTNAME, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    const fp = secure.getPeerCertificate().fingerprint256;
    secure.destroy();
    return fp;
  } finally {
    socket.destroy();
  }
}
