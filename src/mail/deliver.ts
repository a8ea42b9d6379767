// Hands one queued message to a provider: a pooled nodemailer SMTP transport per provider
// (connections are reused across messages), the raw message as accepted (DKIM-signed when
// the sender domain has a key) with our envelope. Returns the attempt; never throws.
import { createHash } from 'node:crypto';
import nodemailer from 'nodemailer';
import { logger } from '../log/index.js';
import { signMessage } from './dkim.js';
import { classify, type SendError } from './policy.js';
import type { Attempt, Provider } from './schema.js';
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
      const rejected = info.rejected.length ? `; rejected by the provider: ${info.rejected.join(', ')}` : '';
      return done({ outcome: 'delivered', code: Number(/^\d{3}/.exec(info.response)?.[0] ?? 250), response: `${info.response}${rejected}`.slice(0, 1000) });
    } catch (e) {
      return done(classify(e as SendError));
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
