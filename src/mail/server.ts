// The SMTP listener (submission policy on every port): STARTTLS, AUTH PLAIN/LOGIN before MAIL
// FROM, sender domains per account, a route for every recipient, SIZE. Deny by default: every
// smtp-server hook is implemented and refuses unless its check passes.
// Contract: a message gets 250 only after MessageStore.enqueue() committed it; a failure to
// commit is a 451 (the client keeps it and retries). Client resets and malformed input end that
// session only.
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerAddress, type SMTPServerAuthentication, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import { smtpError } from '../errors.js';
import { logger } from '../log/index.js';
import type { MessageStore } from './messages.js';
import { dummyHash, verifyPassword } from './password.js';
import { matchRule } from './route.js';
import { domainOf } from './schema.js';
import type { MailStore } from './store.js';
import type { AuthThrottle } from './throttle.js';

/** Recipients per message; more get 452 and the client sends the rest in another transaction. */
const MAX_RECIPIENTS = 1000;
/** An idle client is dropped after this (RFC 5321 4.5.3.2 suggests 5 minutes). */
const SOCKET_TIMEOUT_MS = 5 * 60_000;

export interface ServerOptions {
  hostname: string;
  maxSize: number;
  /** Connections at once on this listener; the next gets 421 at connect. */
  maxClients: number;
  tls: { key: string; cert: string };
  /** On stop, sessions get this long to finish before 421. */
  closeTimeoutMs: number;
}

export interface ServerDeps {
  store: MailStore;
  messages: MessageStore;
  /** Failed-login delays, shared by every listener. */
  throttle: AuthThrottle;
  /** Called after a message is committed (wakes the queue). */
  onQueued: () => void;
  now?: () => number;
}

/** EHLO names and addresses go into a Received header: keep them to a safe alphabet. */
const safe = (v: unknown) => String(v ?? '').replace(/[^A-Za-z0-9.:[\]_-]/g, '?').slice(0, 255);

export class SubmissionServer {
  private readonly server: SMTPServer;
  private readonly log = logger('mail.smtp');
  private readonly now: () => number;

  constructor(
    private readonly deps: ServerDeps,
    private readonly opts: ServerOptions,
  ) {
    this.now = deps.now ?? Date.now;
    this.server = new SMTPServer({
      name: opts.hostname,
      banner: 'dnsproxy mail relay',
      secure: false,
      key: opts.tls.key,
      cert: opts.tls.cert,
      authMethods: ['PLAIN', 'LOGIN'],
      authOptional: false,
      allowInsecureAuth: false,
      authRequiredMessage: smtpError('mail_auth_required').message,
      size: opts.maxSize,
      maxClients: opts.maxClients,
      maxRecipients: MAX_RECIPIENTS,
      socketTimeout: SOCKET_TIMEOUT_MS,
      closeTimeout: opts.closeTimeoutMs,
      disableReverseLookup: true,
      logger: false,
      onConnect: (session, cb) => {
        this.log.debug('connect', { session: session.id, ip: session.remoteAddress });
        cb();
      },
      onAuth: (auth, session, cb) => void this.onAuth(auth, session, cb),
      onMailFrom: (address, session, cb) => cb(this.checkSender(address, session)),
      onRcptTo: (address, session, cb) => cb(this.checkRecipient(address, session)),
      onData: (stream, session, cb) => this.onData(stream, session, cb),
      onClose: (session) => this.log.debug('close', { session: session.id }),
    });
    // Socket errors (resets, TLS failures) end one session; without a listener they would end the process.
    this.server.on('error', (err: NodeJS.ErrnoException) => this.log.info('session error', { error: err.message, code: err.code }));
  }

  async listen(port: number, host: string): Promise<number> {
    const net = this.server.server;
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      net.once('error', onError);
      net.listen(port, host, () => {
        net.off('error', onError);
        resolve();
      });
    });
    return (net.address() as AddressInfo).port;
  }

  /** Stops accepting; open sessions get closeTimeoutMs to finish, then 421. Safe when never listening. */
  close(): Promise<void> {
    if (!this.server.server.listening) return Promise.resolve();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async onAuth(auth: SMTPServerAuthentication, session: SMTPServerSession, cb: (err: Error | null | undefined, res?: { user: string }) => void): Promise<void> {
    const ip = session.remoteAddress;
    try {
      const found = this.deps.store.login(auth.username ?? '');
      // An unknown user costs one scrypt too, so timing does not tell which names exist.
      const ok = (await verifyPassword(auth.password ?? '', found?.hash ?? (await dummyHash()))) && found !== undefined;
      if (ok) {
        this.deps.throttle.succeed(ip);
        this.log.info('authenticated', { session: session.id, ip, account: found.account.name });
        return cb(null, { user: found.account.name });
      }
      const delay = this.deps.throttle.fail(ip);
      this.log.warn('authentication failed', { session: session.id, ip, delay_ms: delay });
      setTimeout(() => cb(smtpError('mail_auth_failed')), delay).unref();
    } catch (e) {
      this.log.error('authentication error', { session: session.id, error: (e as Error).message });
      cb(smtpError('mail_store_unavailable'));
    }
  }

  /** The session's account as it is now (removed accounts stop at once), or an error to send. */
  private account(session: SMTPServerSession) {
    const name = typeof session.user === 'string' ? session.user : undefined;
    return name === undefined ? undefined : this.deps.store.account(name);
  }

  private checkSender(address: SMTPServerAddress, session: SMTPServerSession): Error | null {
    try {
      const account = this.account(session);
      if (!account) return smtpError('mail_auth_required');
      if (!address.address) return smtpError('mail_sender_denied', 'The null sender is not accepted for submission');
      if (!account.allowed_domains.includes(domainOf(address.address)))
        return smtpError('mail_sender_denied', `Sender <${address.address}> is not allowed for account ${account.name}`);
      return null;
    } catch (e) {
      this.log.error('sender check failed', { session: session.id, error: (e as Error).message });
      return smtpError('mail_store_unavailable');
    }
  }

  private checkRecipient(address: SMTPServerAddress, session: SMTPServerSession): Error | null {
    try {
      const account = this.account(session);
      const from = session.envelope.mailFrom;
      if (!account || !from) return smtpError('mail_auth_required');
      const recipientDomain = domainOf(address.address);
      const rule = recipientDomain && matchRule(this.deps.store.rules(), { account: account.name, senderDomain: domainOf(from.address), recipientDomain });
      if (!rule) return smtpError('mail_no_route', `Relaying to <${address.address}> is not configured`);
      return null;
    } catch (e) {
      this.log.error('recipient check failed', { session: session.id, error: (e as Error).message });
      return smtpError('mail_store_unavailable');
    }
  }

  private onData(stream: SMTPServerDataStream, session: SMTPServerSession, cb: (err?: Error | null, message?: string) => void): void {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= this.opts.maxSize) chunks.push(chunk); // past the limit: count, do not keep
    });
    stream.on('error', (e: Error) => this.log.info('message stream error', { session: session.id, error: e.message }));
    stream.on('end', () => {
      if (stream.sizeExceeded || size > this.opts.maxSize) return cb(smtpError('mail_too_large', `Message exceeds the maximum size of ${this.opts.maxSize} bytes`));
      const from = session.envelope.mailFrom;
      const account = this.account(session);
      if (!from || !account) return cb(smtpError('mail_auth_required'));
      const rcptTo = session.envelope.rcptTo.map((r) => r.address);
      const nowMs = this.now();
      const received =
        `Received: from ${safe(session.hostNameAppearsAs)} ([${safe(session.remoteAddress)}])\r\n` +
        `\tby ${safe(this.opts.hostname)} (dnsproxy) with ${session.secure ? 'ESMTPSA' : 'ESMTPA'} id ${safe(session.id)};\r\n` +
        `\t${new Date(nowMs).toUTCString().replace('GMT', '+0000')}\r\n`;
      let ids: string[];
      try {
        ids = this.deps.messages.enqueue({ account: account.name, mailFrom: from.address, rcptTo, raw: Buffer.concat([Buffer.from(received), ...chunks]) }, nowMs);
      } catch (e) {
        this.log.error('queueing failed', { session: session.id, error: (e as Error).message });
        return cb(smtpError('mail_store_unavailable'));
      }
      this.log.info('queued', { session: session.id, account: account.name, ids, recipients: rcptTo.length, size });
      this.deps.onQueued();
      cb(null, `2.0.0 Ok: queued as ${ids.join(',')}`);
    });
  }
}
