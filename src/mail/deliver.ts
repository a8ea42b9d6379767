// Hands one queued message to a provider: a pooled nodemailer SMTP transport per provider
// (connections are reused across messages), the raw message as accepted (DKIM-signed when
// the sender domain has a key) with our envelope. Returns the attempt; never throws.
import { createHash } from 'node:crypto';
import nodemailer from 'nodemailer';
import { logger } from '../log/index.js';
import { signMessage } from './dkim.js';
import { classify, type SendError } from './policy.js';
import type { Attempt, Provider, RecipientReply } from './schema.js';
import type { DkimKey } from './store.js';

/** Connections per provider, and messages per connection before it is renewed. */
const POOL = { maxConnections: 2, maxMessages: 100 };
/** A provider that does not answer is a transient failure after these; the lease outlives all of them. */
export const TIMEOUTS = { connectionTimeout: 30_000, greetingTimeout: 30_000, socketTimeout: 120_000 };

type Pool = ReturnType<typeof createPool>;

function createPool(provider: Provider, hostname: string) {
  const c = provider.config;
  return nodemailer.createTransport({
    pool: true,
    ...POOL,
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

export interface Envelope {
  from: string;
  to: readonly string[];
}

export class Deliverer {
  private readonly pools = new Map<string, { key: string; pool: Pool }>();
  private readonly log = logger('mail.deliver');

  constructor(
    private readonly hostname: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** One attempt. `dkim` signs the message first; a signing failure is a transient attempt. */
  async send(provider: Provider, envelope: Envelope, raw: Buffer, dkim?: DkimKey): Promise<Attempt> {
    const start = this.now();
    const done = (a: Omit<Attempt, 'provider' | 'duration_ms'>): Attempt => ({ ...a, provider: provider.name, duration_ms: this.now() - start });
    try {
      const message = dkim ? await signMessage(raw, dkim) : raw;
      const info = await this.pool(provider).sendMail({ envelope: { from: envelope.from, to: [...envelope.to] }, raw: message });
      const refused = refusals(info);
      const rejected = refused.length ? `; refused by the provider: ${refused.map((r) => r.rcpt).join(', ')}` : '';
      return done({ outcome: 'delivered', code: Number(/^\d{3}/.exec(info.response)?.[0] ?? 250), response: `${info.response}${rejected}`.slice(0, 1000), ...(refused.length ? { refused } : {}) });
    } catch (e) {
      // Every recipient refused at RCPT: the error carries each one's reply too.
      const refused = refusals(e as RefusalInfo);
      return done({ ...classify(e as SendError), ...(refused.length ? { refused } : {}) });
    }
  }

  /** The provider's pool; a changed provider config gets a new pool (the old one is closed). */
  private pool(provider: Provider): Pool {
    const key = createHash('sha256').update(JSON.stringify(provider.config)).digest('hex');
    const cached = this.pools.get(provider.name);
    if (cached?.key === key) return cached.pool;
    cached?.pool.close();
    const pool = createPool(provider, this.hostname);
    pool.on('error', (e: Error) => this.log.warn('provider connection error', { provider: provider.name, error: e.message }));
    this.pools.set(provider.name, { key, pool });
    return pool;
  }

  /** Closes every pooled connection. */
  close(): void {
    for (const { pool } of this.pools.values()) pool.close();
    this.pools.clear();
  }
}
