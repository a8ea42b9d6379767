// SMTP out: `smtp` providers (smarthosts) through a pooled nodemailer transport per provider
// (connections are reused across messages), and what a nodemailer send means for the message,
// shared with direct delivery (mx.ts).
import { createHash } from 'node:crypto';
import { connect as netConnect, type LookupFunction } from 'node:net';
import nodemailer from 'nodemailer';
import type { GetSocketCallback } from 'nodemailer/lib/mailer';
import { logger } from '../../log/index.js';
import { destinationError, guardedLookup, isDestinationError, refusedHost } from './destination.js';
import { classify, type SendError } from '../queue/policy.js';
import type { Attempt, RecipientReply, SmtpProviderConfig } from '../../model/mail.js';

/** An attempt as a transport reports it; the Deliverer adds the provider and the duration. */
export type Outcome = Omit<Attempt, 'provider' | 'duration_ms'>;

/** Messages per pooled connection before it is renewed (connections per provider: its max_connections). */
const MAX_MESSAGES_PER_CONNECTION = 100;
/** A provider that does not answer is a transient failure after these; the lease outlives all of them. */
export const TIMEOUTS = { connectionTimeout: 30_000, greetingTimeout: 30_000, socketTimeout: 120_000 };

/** What nodemailer reports about recipients refused at RCPT TO (on the result, or on the error when all were). */
interface RefusalInfo {
  rejected?: string[];
  rejectedErrors?: { recipient?: string; responseCode?: number; response?: string; message: string }[];
}

/** One reply per refused recipient; a refused recipient without its error gets a reply without a code. */
function refusals(info: RefusalInfo): RecipientReply[] {
  const errors = info.rejectedErrors ?? [];
  const replies: RecipientReply[] = errors
    .filter((e) => typeof e.recipient === 'string')
    .map((e) => ({ rcpt: e.recipient!, code: typeof e.responseCode === 'number' ? e.responseCode : null, response: (e.response ?? e.message).slice(0, 1000) }));
  const known = new Set(replies.map((r) => r.rcpt));
  for (const rcpt of info.rejected ?? []) if (!known.has(rcpt)) replies.push({ rcpt, code: null, response: 'refused by the provider (no reply recorded)' });
  return replies;
}

/** A send nodemailer resolved: delivered, with the recipients refused at RCPT TO (if any). */
export function smtpSuccess(info: RefusalInfo & { response: string }): Outcome {
  const refused = refusals(info);
  const rejected = refused.length ? `; refused by the provider: ${refused.map((r) => r.rcpt).join(', ')}` : '';
  return { outcome: 'delivered', code: Number(/^\d{3}/.exec(info.response)?.[0] ?? 250), response: `${info.response}${rejected}`.slice(0, 1000), ...(refused.length ? { refused } : {}) };
}

/**
 * A send nodemailer rejected: classified (policy.ts), with each recipient's reply when all were
 * refused at RCPT TO. A provider host the relay refused to dial (destination.ts) is a permanent
 * failure: 5.3.5, the relay is configured not to go there.
 */
export function smtpFailure(e: unknown): Outcome {
  if (isDestinationError(e)) return { outcome: 'permanent', code: null, response: `5.3.5 ${e.message}`.slice(0, 1000) };
  const refused = refusals(e as RefusalInfo);
  return { ...classify(e as SendError), ...(refused.length ? { refused } : {}) };
}

type Pool = ReturnType<typeof createPool>;

/** Where a provider may be dialled (destination.ts): this node's own addresses, and the DNS lookup (dns.lookup unless given). */
export interface DestinationGuard {
  own: ReadonlySet<string>;
  lookup?: LookupFunction;
}

/**
 * nodemailer's getSocket: the relay opens the connection itself and nodemailer speaks SMTP (and
 * TLS, verified against the host name) over it. Without allow_private, to an address
 * guardedLookup() checked (an IP literal host is checked as it is).
 */
function providerSocket(c: SmtpProviderConfig, guard: DestinationGuard) {
  const lookup = c.allow_private ? guard.lookup : guardedLookup(guard.own, guard.lookup);
  return (_options: unknown, callback: GetSocketCallback) => {
    const why = c.allow_private ? undefined : refusedHost(c.host, guard.own);
    if (why) return callback(destinationError(`provider host ${c.host}: ${why}: refused (set allow_private on the provider to allow it)`));
    const socket = netConnect({ host: c.host, port: c.port, ...(lookup ? { lookup } : {}) });
    let done = false;
    const finish = (err: Error | null) => {
      if (done) return;
      done = true;
      socket.setTimeout(0);
      socket.removeAllListeners('timeout');
      socket.removeListener('error', finish);
      if (err) {
        socket.destroy();
        return callback(err);
      }
      callback(null, { connection: socket });
    };
    socket.setTimeout(TIMEOUTS.connectionTimeout, () => finish(Object.assign(new Error(`connection to ${c.host}:${c.port} timed out`), { code: 'ETIMEDOUT' })));
    socket.once('error', finish);
    socket.once('connect', () => finish(null));
  };
}

function createPool(c: SmtpProviderConfig, hostname: string, guard: DestinationGuard) {
  return nodemailer.createTransport({
    getSocket: providerSocket(c, guard),
    pool: true,
    maxConnections: c.max_connections,
    maxMessages: MAX_MESSAGES_PER_CONNECTION,
    ...TIMEOUTS,
    host: c.host,
    port: c.port,
    secure: c.security === 'tls',
    requireTLS: c.security === 'starttls',
    ignoreTLS: c.security === 'none',
    ...(c.auth ? { auth: { user: c.auth.user, pass: c.auth.pass } } : {}),
    name: hostname,
    tls: { rejectUnauthorized: c.tls_verify },
    logger: false,
  });
}

/** One pool per `smtp` provider, keyed by name; a changed config gets a new pool (the old one is closed). */
export class SmtpPools {
  private readonly pools = new Map<string, { key: string; pool: Pool }>();
  private readonly log = logger('mail.deliver');

  constructor(
    private readonly hostname: string,
    private readonly guard: DestinationGuard = { own: new Set() },
  ) {}

  /** One attempt through the provider's pool. Never throws. */
  async send(name: string, config: SmtpProviderConfig, envelope: { from: string; to: readonly string[] }, message: Buffer): Promise<Outcome> {
    try {
      return smtpSuccess(await this.pool(name, config).sendMail({ envelope: { from: envelope.from, to: [...envelope.to] }, raw: message }));
    } catch (e) {
      return smtpFailure(e);
    }
  }

  private pool(name: string, config: SmtpProviderConfig): Pool {
    const key = createHash('sha256').update(JSON.stringify(config)).digest('hex');
    const cached = this.pools.get(name);
    if (cached?.key === key) return cached.pool;
    cached?.pool.close();
    const pool = createPool(config, this.hostname, this.guard);
    pool.on('error', (e: Error) => this.log.warn('provider connection error', { provider: name, error: e.message }));
    this.pools.set(name, { key, pool });
    return pool;
  }

  /** Closes the pool of a provider that is gone or no longer `smtp`. */
  drop(name: string): void {
    this.pools.get(name)?.pool.close();
    this.pools.delete(name);
  }

  /** Closes every pooled connection. */
  close(): void {
    for (const { pool } of this.pools.values()) pool.close();
    this.pools.clear();
  }
}
