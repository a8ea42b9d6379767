// The SMTP listener (submission policy on every port): STARTTLS (or implicit TLS), AUTH
// PLAIN/LOGIN before MAIL FROM, sender domains per account, a route for every recipient, SIZE,
// messages per account and connections per client address (ratelimit.ts), idle and total session
// time. Deny by default: every smtp-server hook is implemented and refuses unless its check passes.
// A listener given `inbound` (the SMTP port: an MX's) also takes mail without AUTH, but only for
// the domains we host (mail_domains; none: no mail at all) (inbound.ts): any sender, recipients in
// a hosted domain with a rule naming it, SPF/DKIM/DMARC checked before 250 (DMARC fail + p=reject → 550 5.7.1), the
// Authentication-Results prepended. Everything else without AUTH is 550 5.7.1: never an open relay.
// Contract: a message gets 250 only after the delivery side committed it (delivery.ts, group commit); a failure to
// commit is a 451 (the client keeps it and retries). Client resets and malformed input end that
// session only.
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerAddress, type SMTPServerAuthentication, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import { smtpError } from '../../errors.js';
import { logger } from '../../log/index.js';
import { checkMessage, inboundRecipient, MAX_RECEIVED, receivedCount, stripOwnAuthResults } from './inbound.js';
import type { Delivery } from '../queue/delivery.js';
import type { DnsResolver } from '../resolver.js';
import { AuthBusyError, type Authenticator } from '../credentials/auth.js';
import { matchRule } from '../queue/route.js';
import { reasonOf, relayAuth, relayConnections, relayMessages, relaySessions, type Listener } from '../relay-metrics.js';
import { domainOf } from '../../model/mail.js';
import type { MailStore } from '../store.js';
import type { ConcurrencyLimit, DataBudget, RateLimiter } from './ratelimit.js';
import type { AuthThrottle, LoginLockout, LoginSlots } from './throttle.js';

/** Recipients per message; more get 452 and the client sends the rest in another transaction. */
const MAX_RECIPIENTS = 1000;
/**
 * Recipients refused as relaying (550 5.7.1) in one session without AUTH; the next gets 421 and
 * the connection ends (Postfix's smtpd_hard_error_limit is 20 too): a probe walking a list of
 * addresses costs it a reconnect, which the per-address connection rate limits.
 */
export const MAX_REFUSED_RECIPIENTS = 20;
/** An idle client is dropped after this with 421 (RFC 5321 4.5.3.2 suggests 5 minutes). */
export const IDLE_TIMEOUT_MS = 5 * 60_000;
/**
 * A session ends after this however busy it is (421 4.4.2; the client reconnects): bounds how long
 * a client dripping a byte every few minutes holds one of mail_max_clients. Pooled clients renew
 * their connections well before (nodemailer's pool: every 100 messages).
 */
export const MAX_SESSION_MS = 60 * 60_000;
/** At the session limit, a transaction in progress (MAIL FROM given) gets this long to finish first. */
export const SESSION_END_GRACE_MS = 5 * 60_000;
/** How often a session past its limit is looked at again while its transaction runs. */
const SESSION_END_POLL_MS = 1000;

export interface SessionTimeouts {
  idleMs: number;
  maxSessionMs: number;
  graceMs: number;
}

export interface ServerOptions {
  hostname: string;
  maxSize: number;
  /** Connections at once on this listener; the next gets 421 at connect. */
  maxClients: number;
  tls: { key: string; cert: string };
  /** On stop, sessions get this long to finish before 421. */
  closeTimeoutMs: number;
  /** The constants above unless given (tests shorten them). */
  timeouts?: Partial<SessionTimeouts>;
  /** Take mail without AUTH for these domains, checked against this DNS. Unset: AUTH required (530). */
  inbound?: InboundOptions;
  /** TLS from the first byte (RFC 8314 implicit TLS, the port 465 listener) instead of STARTTLS. */
  implicitTls?: boolean;
}

export interface InboundOptions {
  /** Lower-case, no trailing dot. */
  domains: ReadonlySet<string>;
  resolver: DnsResolver;
  /** inbound.ts CHECK_TIMEOUT_MS unless given. */
  checkTimeoutMs?: number;
}

export interface ServerDeps {
  store: MailStore;
  /** Where accepted messages are committed (the delivery side, delivery.ts). */
  queue: Pick<Delivery, 'enqueueSoon'>;
  /** Password and API-key checks (cached, off the event loop), shared by every listener. */
  auth: Authenticator;
  /** Failed-login delays, shared by every listener. */
  throttle: AuthThrottle;
  /** Failed logins per account and per client address, and the lockouts they start (454 4.7.0), shared by every listener. */
  lockout: LoginLockout;
  /** AUTH exchanges in progress per client address (more wait), shared by every listener. */
  slots: LoginSlots;
  /** Waits out a failed login's delay before its 535 (a timer unless given: tests release it). */
  sleep?: (ms: number) => Promise<void>;
  /** Messages per account (451 4.7.0 at MAIL FROM once spent), shared by every listener. */
  accountRate: RateLimiter;
  /** Connections per client IP (421 4.7.0 at connect once spent), shared by every listener. */
  connectionRate: RateLimiter;
  /** Sessions open at once per client IP (421 4.7.0 at connect beyond it), shared by every listener. */
  clientsPerIp: ConcurrencyLimit;
  /** Message bytes all sessions may hold in memory together (452 4.3.1 beyond it), shared by every listener. */
  dataBudget: DataBudget;
  now?: () => number;
}

/** EHLO names and addresses go into a Received header: keep them to a safe alphabet. */
const safe = (v: unknown) => (typeof v === 'string' ? v : '').replace(/[^A-Za-z0-9.:[\]_-]/g, '?').slice(0, 255);

/** Our trace field; `protocol` as RFC 3848 names it (ESMTPSA: submission over TLS, ESMTP: plain inbound, …). */
function receivedHeader(session: SMTPServerSession, hostname: string, protocol: string, nowMs: number): string {
  return (
    `Received: from ${safe(session.hostNameAppearsAs)} ([${safe(session.remoteAddress)}])\r\n` +
    `\tby ${safe(hostname)} (dnsproxy) with ${safe(protocol)} id ${safe(session.id)};\r\n` +
    `\t${new Date(nowMs).toUTCString().replace('GMT', '+0000')}\r\n`
  );
}

export class SubmissionServer {
  private readonly server: SMTPServer;
  private readonly log = logger('mail.smtp');
  private readonly now: () => number;
  private readonly timeouts: SessionTimeouts;
  /** Per open session: the timer that ends it at the session limit. */
  private readonly sessionTimers = new Map<string, NodeJS.Timeout>();
  /** Per session that logged in with an API key: the key's id, checked again at every MAIL FROM. */
  private readonly sessionKeys = new Map<string, string>();
  /** Per session without AUTH: recipients refused as relaying so far (MAX_REFUSED_RECIPIENTS). */
  private readonly refusals = new Map<string, number>();
  /** Sessions let in at connect and not yet closed, with their client address (clientsPerIp). */
  private readonly open = new Map<string, string>();
  /** Per session holding message data: gives its bytes back to the budget (on close at the latest). */
  private readonly dataHeld = new Map<string, () => void>();
  private readonly sleep: (ms: number) => Promise<void>;
  /** The listener's name in the metrics. */
  private readonly listener: Listener;

  /** Counts a refusal (relay-metrics.ts) and hands it on. */
  private refused(e: Error | null): Error | null {
    if (e) relayMessages.labels(this.listener, 'rejected', reasonOf(e)).inc();
    return e;
  }

  constructor(
    private readonly deps: ServerDeps,
    private readonly opts: ServerOptions,
  ) {
    this.now = deps.now ?? Date.now;
    this.listener = opts.inbound !== undefined ? 'smtp' : opts.implicitTls ? 'smtps' : 'submission';
    this.sleep = deps.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms).unref()));
    this.timeouts = { idleMs: IDLE_TIMEOUT_MS, maxSessionMs: MAX_SESSION_MS, graceMs: SESSION_END_GRACE_MS, ...opts.timeouts };
    this.server = new SMTPServer({
      name: opts.hostname,
      banner: 'dnsproxy mail relay',
      secure: opts.implicitTls === true,
      key: opts.tls.key,
      cert: opts.tls.cert,
      authMethods: ['PLAIN', 'LOGIN'],
      // Inbound: MAIL FROM without AUTH gets past smtp-server, and our hooks decide (inboundSession()).
      authOptional: opts.inbound !== undefined,
      allowInsecureAuth: false,
      authRequiredMessage: smtpError('mail_auth_required').message,
      size: opts.maxSize,
      maxClients: opts.maxClients,
      maxRecipients: MAX_RECIPIENTS,
      socketTimeout: this.timeouts.idleMs,
      closeTimeout: opts.closeTimeoutMs,
      disableReverseLookup: true,
      logger: false,
      onConnect: (session, cb) => {
        const e = this.onConnect(session);
        relayConnections.labels(this.listener, e ? reasonOf(e) : 'accepted').inc();
        if (!e) relaySessions.labels(this.listener).inc();
        cb(e);
      },
      onAuth: (auth, session, cb) =>
        void this.onAuth(auth, session, (e, res) => {
          relayAuth.labels(this.listener, e ? reasonOf(e) : 'ok').inc();
          cb(e, res);
        }),
      onMailFrom: (address, session, cb) => cb(this.refused(this.checkSender(address, session))),
      onRcptTo: (address, session, cb) => cb(this.refused(this.checkRecipient(address, session))),
      onData: (stream, session, cb) =>
        this.onData(stream, session, (e, message) => {
          if (e) this.refused(e);
          else relayMessages.labels(this.listener, 'accepted', 'accepted').inc();
          cb(e, message);
        }),
      onClose: (session) => {
        if (this.open.has(session.id)) relaySessions.labels(this.listener).dec();
        clearTimeout(this.sessionTimers.get(session.id));
        this.sessionTimers.delete(session.id);
        this.sessionKeys.delete(session.id);
        this.refusals.delete(session.id);
        const ip = this.open.get(session.id);
        if (ip !== undefined) this.deps.clientsPerIp.leave(ip);
        this.open.delete(session.id);
        this.dataHeld.get(session.id)?.(); // a client gone mid-DATA: its bytes go back
        this.log.debug('close', { session: session.id });
      },
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

  /**
   * Presents `tls` at every TLS handshake from now on (STARTTLS, or the connection's first bytes
   * on the implicit-TLS listener); sessions already encrypted keep theirs. The
   * caller has checked the pair (certcheck.ts): smtp-server's updateSecureContext() leaves the
   * listener without a context when node:tls refuses it.
   */
  setTls(tls: { key: string; cert: string }): void {
    this.server.updateSecureContext({ key: tls.key, cert: tls.cert });
  }

  /** Stops accepting; open sessions get closeTimeoutMs to finish, then 421. Safe when never listening. */
  close(): Promise<void> {
    if (!this.server.server.listening) return Promise.resolve();
    return new Promise((resolve) =>
      this.server.close(() => {
        for (const t of this.sessionTimers.values()) clearTimeout(t);
        this.sessionTimers.clear();
        resolve();
      }),
    );
  }

  /** Sessions at once per client IP, the connection rate per client IP, then the session clock. */
  private onConnect(session: SMTPServerSession): Error | null {
    const ip = session.remoteAddress;
    const clients = this.deps.clientsPerIp;
    if (clients.count(ip) >= clients.max && clients.max > 0) {
      this.log.warn('client address at its session limit', { session: session.id, ip, limit: clients.max });
      return smtpError('mail_client_limit', `Too many connections from ${safe(ip)} at once (at most ${clients.max}), try again later`);
    }
    if (!this.deps.connectionRate.tryTake(ip)) {
      const wait = Math.ceil(this.deps.connectionRate.wait(ip) / 1000);
      this.log.warn('connection rate limit reached', { session: session.id, ip, limit_per_minute: this.deps.connectionRate.opts.limit });
      return smtpError('mail_connection_rate', `Too many connections from ${safe(ip)}, try again in ${wait} s`);
    }
    this.log.debug('connect', { session: session.id, ip });
    clients.tryEnter(ip);
    this.open.set(session.id, ip);
    if (!this.opts.implicitTls) this.authOnlyOverTls(session);
    const deadline = this.now() + this.timeouts.maxSessionMs;
    this.armSessionEnd(session.id, this.timeouts.maxSessionMs, deadline + this.timeouts.graceMs);
    return null;
  }

  /**
   * AUTH only over TLS (Postfix's smtpd_tls_auth_only): in plain text, EHLO lists no AUTH and AUTH
   * is answered 530 5.7.0 before any credential is asked for (no 334) or read (an initial
   * response on the AUTH line is dropped). smtp-server has no switch for it: with
   * allowInsecureAuth false it still lists AUTH and answers 538 once the client has sent its
   * credentials in clear text, and a session's disabledCommands hides AUTH from EHLO but answers
   * AUTH with 500. So this connection's EHLO runs with AUTH disabled while in plain text, and its
   * AUTH handler refuses first. After STARTTLS both are smtp-server's own.
   */
  private authOnlyOverTls(session: SMTPServerSession): void {
    const conn = [...this.server.connections].find((c) => c.session === session);
    if (!conn) return;
    const ehlo = conn.handler_EHLO.bind(conn);
    const auth = conn.handler_AUTH.bind(conn);
    conn.handler_EHLO = (command, callback) => {
      if (conn.secure) return ehlo.call(conn, command, callback);
      const own = conn.session.disabledCommands;
      conn.session.disabledCommands = [...(own ?? []), 'AUTH']; // smtp-server builds the EHLO reply synchronously
      try {
        ehlo.call(conn, command, callback);
      } finally {
        conn.session.disabledCommands = own;
      }
    };
    conn.handler_AUTH = (command, callback) => {
      if (conn.secure) return auth.call(conn, command, callback);
      this.log.info('AUTH refused before STARTTLS', { session: session.id, ip: session.remoteAddress });
      const e = smtpError('mail_starttls_required');
      conn.send(e.responseCode, e.message);
      callback();
    };
  }

  /**
   * Ends session `id` with 421 4.4.2 `inMs` from now: at once when it is between transactions,
   * else once its transaction is over, or at `hardDeadline` regardless.
   */
  private armSessionEnd(id: string, inMs: number, hardDeadline: number): void {
    const timer = setTimeout(() => {
      const conn = [...this.server.connections].find((c) => c.id === id);
      if (!conn) return this.sessionTimers.delete(id);
      if (conn.session.envelope?.mailFrom && this.now() < hardDeadline) return this.armSessionEnd(id, SESSION_END_POLL_MS, hardDeadline);
      this.sessionTimers.delete(id);
      this.log.info('session time limit reached', { session: id, ip: conn.remoteAddress, in_transaction: Boolean(conn.session.envelope?.mailFrom) });
      const e = smtpError('mail_session_expired');
      conn.send(e.responseCode, e.message, false);
      conn.close();
    }, inMs);
    timer.unref();
    this.sessionTimers.set(id, timer);
  }

  /**
   * AUTH: lockouts first (throttle.ts: the client address, then the account; 454 4.7.0 without a
   * hash, the right password too; a live API key still opens a locked account), then the
   * password or key. At most slots.max exchanges per client address at once, a failed one holding
   * its place through its delayed 535, so parallel connections buy no extra guesses.
   */
  private async onAuth(auth: SMTPServerAuthentication, session: SMTPServerSession, cb: (err: Error | null | undefined, res?: { user: string }) => void): Promise<void> {
    const ip = session.remoteAddress;
    // RFC 4954 4: never in a transaction. On the SMTP port a MAIL FROM without AUTH is taken under
    // the inbound policy (any sender); logging in after it would send that sender unchecked.
    if (session.envelope?.mailFrom) {
      this.log.info('AUTH refused during a mail transaction', { session: session.id, ip });
      return cb(smtpError('mail_auth_in_transaction'));
    }
    const { lockout } = this.deps;
    const ipKey = `ip:${ip}`;
    const locked = (wait: number, whose: string) => smtpError('mail_auth_locked', `Too many failed logins ${whose}, try again in ${Math.ceil(wait / 1000)} s`);
    const ipLocked = lockout.lockedFor(ipKey); // before waiting for a slot: a locked address waits for nothing
    if (ipLocked) return cb(locked(ipLocked, `from ${safe(ip)}`));
    const release = await this.deps.slots.acquire(ip);
    try {
      if (!this.open.has(session.id)) return cb(smtpError('mail_auth_busy')); // the client left while waiting for its turn: no hash for nobody
      const username = auth.username ?? '';
      const secret = auth.password ?? '';
      const account = this.deps.auth.accountOf(username);
      // A name that is no account is counted under the name itself: a lockout tells nothing about which exist.
      const accountKey = `account:${account ?? `?${username.toLowerCase()}`}`;
      const ipWait = lockout.lockedFor(ipKey);
      if (ipWait) return cb(locked(ipWait, `from ${safe(ip)}`));
      const accountWait = lockout.lockedFor(accountKey);
      const ok = accountWait ? this.deps.auth.verifyKey(username, secret) : await this.deps.auth.verify(username, secret);
      if (!ok) {
        if (accountWait) {
          this.log.warn('authentication refused: the account is locked out', { session: session.id, ip, account: account ?? '(no such account)', locked_ms: accountWait });
          return cb(locked(accountWait, 'for this account'));
        }
        const delay = this.deps.throttle.fail(ip);
        const accountLock = lockout.fail(accountKey);
        const ipLock = lockout.fail(ipKey);
        this.log.warn('authentication failed', { session: session.id, ip, delay_ms: delay });
        if (accountLock) this.log.warn('account locked out after repeated failed logins', { account: account ?? '(no such account)', ip, locked_ms: accountLock });
        if (ipLock) this.log.warn('client address locked out after repeated failed logins', { ip, locked_ms: ipLock });
        await this.sleep(delay); // the slot stays taken until the 535 goes out
        return cb(smtpError('mail_auth_failed'));
      }
      this.deps.throttle.succeed(ip);
      lockout.succeed(accountKey);
      lockout.succeed(ipKey);
      if (ok.keyId) this.sessionKeys.set(session.id, ok.keyId);
      this.log.info('authenticated', { session: session.id, ip, account: ok.account.name, ...(ok.keyId ? { key: ok.keyId } : { with: 'password' }) });
      cb(null, { user: ok.account.name });
    } catch (e) {
      if (e instanceof AuthBusyError) {
        this.log.warn('authentication deferred: too many logins waiting for a hash', { session: session.id, ip });
        return cb(smtpError('mail_auth_busy'));
      }
      this.log.error('authentication error', { session: session.id, error: (e as Error).message });
      cb(smtpError('mail_store_unavailable'));
    } finally {
      release();
    }
  }

  /** The session's account as it is now (removed accounts stop at once), or an error to send. */
  private account(session: SMTPServerSession) {
    const name = typeof session.user === 'string' ? session.user : undefined;
    return name === undefined ? undefined : this.deps.store.account(name);
  }

  /** A session on an inbound listener that has not authenticated: the inbound policy applies to it. */
  private inboundSession(session: SMTPServerSession): boolean {
    return this.opts.inbound !== undefined && !session.user; // smtp-server sets false after STARTTLS
  }

  private checkSender(address: SMTPServerAddress, session: SMTPServerSession): Error | null {
    const declared = Number((address.args || {})['SIZE'] ?? 0); // RFC 1870: over what we can hold now is 452
    if (declared > this.deps.dataBudget.free) {
      this.log.warn('message data budget full: SIZE refused at MAIL FROM', { session: session.id, ip: session.remoteAddress, size: declared, free: this.deps.dataBudget.free });
      return smtpError('mail_data_memory_full');
    }
    if (this.inboundSession(session)) {
      // Any sender, <> too (bounces to our domains): SPF and DMARC judge it once the message is in.
      this.log.debug('inbound sender', { session: session.id, ip: session.remoteAddress, from: address.address });
      return null;
    }
    try {
      const account = this.account(session);
      if (!account) return smtpError('mail_auth_required');
      const keyId = this.sessionKeys.get(session.id);
      if (keyId !== undefined && !this.deps.auth.keyLive(keyId))
        return smtpError('mail_auth_required', 'The API key this session logged in with was revoked or has expired; log in again');
      if (!address.address) return smtpError('mail_sender_denied', 'The null sender is not accepted for submission');
      if (!account.allowed_domains.includes(domainOf(address.address)))
        return smtpError('mail_sender_denied', `Sender <${address.address}> is not allowed for account ${account.name}`);
      const wait = this.deps.accountRate.wait(account.name);
      if (wait > 0) {
        const limit = this.deps.accountRate.opts.limit;
        this.log.warn('account message rate limit reached', { session: session.id, account: account.name, limit_per_hour: limit });
        return smtpError('mail_rate_limited', `Account ${account.name} may send ${limit} messages per hour and has reached that, try again in ${Math.ceil(wait / 1000)} s`);
      }
      return null;
    } catch (e) {
      this.log.error('sender check failed', { session: session.id, error: (e as Error).message });
      return smtpError('mail_store_unavailable');
    }
  }

  private checkRecipient(address: SMTPServerAddress, session: SMTPServerSession): Error | null {
    if (this.inboundSession(session)) return this.checkInboundRecipient(address, session);
    try {
      const account = this.account(session);
      const from = session.envelope.mailFrom;
      if (!account || !from) return smtpError('mail_auth_required');
      const recipientDomain = domainOf(address.address);
      const rule = recipientDomain && matchRule(this.deps.store.rules(), { account: account.name, senderDomain: domainOf(from.address), recipientDomain });
      if (!rule) return smtpError('mail_no_route', `Relaying to <${address.address}> is not configured`);
      const suppressed = this.deps.store.suppression(address.address);
      if (suppressed)
        return smtpError('mail_recipient_suppressed', `<${address.address}> is suppressed since ${suppressed.created_at} (${suppressed.source === 'bounce' ? 'it hard-bounced' : 'added by an operator'}: ${suppressed.reason.slice(0, 200)}); not sent`);
      return null;
    } catch (e) {
      this.log.error('recipient check failed', { session: session.id, error: (e as Error).message });
      return smtpError('mail_store_unavailable');
    }
  }

  /** Without AUTH: a hosted domain with a rule naming it; else 550 5.7.1 (451 4.3.5 for a hosted domain no rule names). */
  private checkInboundRecipient(address: SMTPServerAddress, session: SMTPServerSession): Error | null {
    const inbound = this.opts.inbound!;
    try {
      const from = session.envelope.mailFrom;
      if (!from) return smtpError('mail_auth_required');
      const decision = inboundRecipient(inbound.domains, this.deps.store.rules(), domainOf(from.address), domainOf(address.address));
      if (decision.kind === 'routed') return null;
      if (decision.kind === 'not_hosted') {
        const refused = (this.refusals.get(session.id) ?? 0) + 1;
        this.refusals.set(session.id, refused);
        const fields = { session: session.id, ip: session.remoteAddress, from: from.address, to: address.address };
        if (refused > MAX_REFUSED_RECIPIENTS) {
          this.log.info('too many refused recipients; closing the session', { ...fields, refused: refused - 1 });
          return smtpError('mail_too_many_refusals');
        }
        // The first one per session at info; a probe's next ones at debug (one line each would flood the log).
        this.log[refused === 1 ? 'info' : 'debug']('relaying denied', fields);
        return smtpError('mail_relay_denied', `Relaying denied: <${address.address}> is not in a domain this server receives mail for; authenticate to send elsewhere`);
      }
      this.log.warn('mail for a hosted domain that no rule names (add a rule with this recipient domain)', { session: session.id, to: address.address });
      return smtpError('mail_inbound_unrouted', `No route for mail to ${domainOf(address.address)} here yet, try again later`);
    } catch (e) {
      this.log.error('recipient check failed', { session: session.id, error: (e as Error).message });
      return smtpError('mail_store_unavailable');
    }
  }

  /**
   * Keeps the message in memory while it comes, each chunk taken from the shared data budget:
   * one that does not fit ends the keeping (what was kept goes back at once) and the message gets
   * 452 4.3.1 at its end; past maxSize chunks are only counted (552). The bytes go back when the
   * message is committed or refused, or when the session closes.
   */
  private onData(stream: SMTPServerDataStream, session: SMTPServerSession, cb: (err?: Error | null, message?: string) => void): void {
    const budget = this.deps.dataBudget;
    const chunks: Buffer[] = [];
    let size = 0;
    let held = 0;
    let overBudget = false;
    const giveBack = () => {
      budget.give(held);
      held = 0;
      this.dataHeld.delete(session.id);
    };
    this.dataHeld.set(session.id, giveBack);
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (overBudget || size > this.opts.maxSize) return; // past a limit: count, do not keep
      if (!budget.take(chunk.length)) {
        overBudget = true;
        chunks.length = 0;
        giveBack();
        this.log.warn('message data budget full: this message is not kept (452 at its end)', { session: session.id, ip: session.remoteAddress, in_use: budget.inUse, max: budget.max });
        return;
      }
      held += chunk.length;
      chunks.push(chunk);
    });
    stream.on('error', (e: Error) => this.log.info('message stream error', { session: session.id, error: e.message }));
    stream.on('end', () => {
      const done = (err?: Error | null, message?: string) => {
        giveBack();
        cb(err, message);
      };
      if (stream.sizeExceeded || size > this.opts.maxSize) return done(smtpError('mail_too_large', `Message exceeds the maximum size of ${this.opts.maxSize} bytes`));
      if (overBudget) return done(smtpError('mail_data_memory_full'));
      if (this.inboundSession(session)) return void this.acceptInbound(session, Buffer.concat(chunks), done);
      const from = session.envelope.mailFrom;
      const account = this.account(session);
      if (!from || !account) return done(smtpError('mail_auth_required'));
      const rcptTo = session.envelope.rcptTo.map((r) => r.address);
      const nowMs = this.now();
      const received = receivedHeader(session, this.opts.hostname, session.secure ? 'ESMTPSA' : 'ESMTPA', nowMs);
      const queued = { session: session.id, account: account.name, recipients: rcptTo.length, size }; // logged by the thread that commits it
      this.deps.queue.enqueueSoon({ account: account.name, mailFrom: from.address, rcptTo, raw: Buffer.concat([Buffer.from(received), ...chunks]) }, nowMs, queued).then(
        (ids) => {
          this.deps.accountRate.take(account.name); // one per accepted message, however many recipients
          done(null, `2.0.0 Ok: queued as ${ids.join(',')}`);
        },
        (e: unknown) => {
          this.log.error('queueing failed', { session: session.id, error: (e as Error).message });
          done(smtpError('mail_store_unavailable'));
        },
      );
    });
  }

  /**
   * An inbound message (no AUTH): loop check, SPF/DKIM/DMARC, then queued like a submission with
   * account '' and source `inbound`, mailauth's Received-SPF and Authentication-Results and our
   * Received on top (Authentication-Results forged in our name removed). 250 only after the
   * commit; a check that cannot finish is 451 (the sender retries).
   */
  private async acceptInbound(session: SMTPServerSession, message: Buffer, cb: (err?: Error | null, message?: string) => void): Promise<void> {
    const inbound = this.opts.inbound!;
    const from = session.envelope.mailFrom;
    if (!from) return cb(smtpError('mail_auth_required'));
    const hops = receivedCount(message);
    if (hops >= MAX_RECEIVED) {
      this.log.warn('mail loop: too many Received fields', { session: session.id, ip: session.remoteAddress, from: from.address, hops });
      return cb(smtpError('mail_loop', `Too many hops (${hops} Received fields): a mail loop`));
    }
    const client = { ip: session.remoteAddress, helo: String(session.hostNameAppearsAs || ''), sender: from.address };
    let check;
    try {
      check = await checkMessage(message, client, { resolver: inbound.resolver, authservId: this.opts.hostname, ...(inbound.checkTimeoutMs ? { timeoutMs: inbound.checkTimeoutMs } : {}) });
    } catch (e) {
      this.log.warn('SPF/DKIM/DMARC check failed; 451, the sender retries', { session: session.id, ip: client.ip, from: from.address, error: (e as Error).message });
      return cb(smtpError('mail_auth_check_failed'));
    }
    const { spf, dkim, dmarc } = check.summary;
    if (check.verdict.kind === 'reject') {
      this.log.info('inbound rejected by DMARC', { session: session.id, ip: client.ip, from: from.address, spf, dkim, dmarc });
      return cb(smtpError('mail_dmarc_reject', check.verdict.reason));
    }
    if (check.verdict.kind === 'defer') {
      this.log.warn('inbound deferred: DNS decided the DMARC check (451, the sender retries)', { session: session.id, ip: client.ip, from: from.address, spf, dkim, dmarc });
      return cb(smtpError('mail_auth_check_failed', check.verdict.reason));
    }
    const rcptTo = session.envelope.rcptTo.map((r) => r.address);
    const nowMs = this.now();
    const received = receivedHeader(session, this.opts.hostname, session.transmissionType, nowMs);
    const raw = Buffer.concat([Buffer.from(check.headers), Buffer.from(received), stripOwnAuthResults(message, this.opts.hostname)]);
    let ids: string[];
    try {
      ids = await this.deps.queue.enqueueSoon({ account: '', mailFrom: from.address, rcptTo, raw, source: 'inbound' }, nowMs);
    } catch (e) {
      this.log.error('queueing failed', { session: session.id, error: (e as Error).message });
      return cb(smtpError('mail_store_unavailable'));
    }
    this.log.info('inbound queued', { session: session.id, ip: client.ip, from: from.address, ids, recipients: rcptTo.length, size: message.length, spf, dkim, dmarc });
    cb(null, `2.0.0 Ok: queued as ${ids.join(',')}`);
  }
}
