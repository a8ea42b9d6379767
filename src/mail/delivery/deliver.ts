// Hands one queued message to a provider, by its type: `smtp` through a pooled connection to the
// smarthost (smtp.ts), `mx` straight to the recipient domain's mail hosts (mx.ts), `http` to an
// e-mail API (http.ts); `smtp` and `http` only to hosts destination.ts allows. The message goes as accepted (DKIM-signed when the sender domain has a
// key) with our envelope. Returns the attempt; never throws.
import type { LookupFunction } from 'node:net';
import { signMessage } from './dkim.js';
import { HttpSender } from './http.js';
import { MxSender, smtpConnect, type MxConnect, type MxResolver } from './mx.js';
import type { Attempt, Provider } from '../../model/mail.js';
import { SmtpPools, type Outcome } from './smtp.js';
import type { DkimKey } from '../store.js';

export interface Envelope {
  from: string;
  /** Recipients of one domain (the queue splits messages per recipient domain). */
  to: readonly string[];
}

export interface DelivererDeps {
  /** DNS for `mx` providers: node:dns on the relay's servers in production, an in-memory zone in tests. */
  resolver: MxResolver;
  /** One SMTP session of an `mx` delivery (mx.ts smtpConnect unless given). */
  mxConnect?: MxConnect;
  /** Orders MX hosts of equal preference (Math.random unless given). */
  random?: () => number;
  /** `http` providers: no reply after this is a transient failure (http.ts HTTP_TIMEOUT_MS unless given). */
  httpTimeoutMs?: number;
  /** This node's own addresses: `smtp` and `http` providers without allow_private never connect there (destination.ts). */
  ownAddresses?: readonly string[];
  /** DNS for `smtp` and `http` provider hosts (dns.lookup unless given; tests give names addresses). */
  lookup?: LookupFunction;
  now?: () => number;
}

export class Deliverer {
  private readonly smtp: SmtpPools;
  private readonly mx: MxSender;
  private readonly http: HttpSender;
  private readonly now: () => number;
  private readonly own: ReadonlySet<string>;

  constructor(hostname: string, deps: DelivererDeps) {
    const own = (this.own = new Set(deps.ownAddresses));
    this.smtp = new SmtpPools(hostname, { own, ...(deps.lookup ? { lookup: deps.lookup } : {}) });
    this.mx = new MxSender(deps.resolver, deps.mxConnect ?? smtpConnect(hostname), deps.random);
    this.http = new HttpSender({ own, ...(deps.httpTimeoutMs ? { timeoutMs: deps.httpTimeoutMs } : {}), ...(deps.lookup ? { lookup: deps.lookup } : {}) });
    this.now = deps.now ?? Date.now;
  }

  /** One attempt. `dkim` signs the message first; a signing failure is a transient attempt. */
  async send(provider: Provider, envelope: Envelope, raw: Buffer, dkim?: DkimKey): Promise<Attempt> {
    const start = this.now();
    let outcome: Outcome;
    try {
      const message = dkim ? await signMessage(raw, dkim) : raw;
      outcome = await this.transport(provider, envelope, message);
    } catch (e) {
      outcome = { outcome: 'transient', code: null, response: (e as Error).message.slice(0, 1000) };
    }
    return { ...outcome, provider: provider.name, duration_ms: this.now() - start };
  }

  private transport(provider: Provider, envelope: Envelope, message: Buffer): Promise<Outcome> {
    const c = provider.config;
    if (c.type === 'smtp') return this.smtp.send(provider.name, c, envelope, message);
    this.smtp.drop(provider.name); // was an smtp provider once: its pool goes
    if (c.type === 'mx') return this.mx.send(c.port, envelope, message, c.allow_private ? null : this.own);
    return this.http.send(c, envelope, message);
  }

  /** Closes every pooled connection. */
  close(): void {
    this.smtp.close();
    this.http.close();
  }
}
