// The delivery workers: claim due messages with a lease, deliver each through the provider its
// rule names, record the attempt and the next state. Contracts:
// - at-least-once: a message is final only after its provider accepted (delivered) or refused it
//   for good (bounced), or the give-up time passed (failed). A crash mid-delivery leaves the lease
//   behind (released by the next start on this host, else it lapses) and the message is delivered
//   again; nothing accepted is lost.
// - leases of deliveries in flight are renewed, so a slow delivery is never claimed twice.
// - per recipient: when the provider refuses some recipients at RCPT TO, each group of
//   recipients gets its own state (policy.ts settle()): accepted ones delivered, 5xx ones
//   bounced, 4xx ones retried on their own.
// - a message that ends bounced or failed gets a DSN (dsn.ts) to its sender, queued in the same
//   transaction; a message from `<>` (a DSN itself) never does.
// - stop() claims nothing more and waits up to drainMs for deliveries in flight.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { logger } from '../../log/index.js';
import type { Deliverer } from '../delivery/deliver.js';
import type { MessageStore } from './messages.js';
import type { Pace } from './pace.js';
import { renderDsn } from '../delivery/dsn.js';
import { settle, type Part, type RetryPolicy } from './policy.js';
import { matchRule, providerFor, routeDomain } from './route.js';
import type { AttemptMetric } from '../relay-metrics.js';
import type { Attempt, Message } from '../../model/mail.js';
import type { MailStore } from '../store.js';

export interface QueueOptions {
  /** Deliveries in flight at once. */
  workers: number;
  /** How long a claim holds; renewed every leaseMs/3 while the delivery runs. */
  leaseMs: number;
  /** How often due messages are looked for (new ones also wake the queue at once). */
  pollMs: number;
  retry: RetryPolicy;
  /** Failed attempts on the primary before the fallback provider takes turns (src/mail/queue/route.ts). */
  fallbackAfter: number;
  /** stop() waits this long for deliveries in flight; the rest are retried after their lease lapses. */
  drainMs: number;
  /** This relay's name in the DSNs it sends (Reporting-MTA). */
  hostname?: string;
}

/**
 * The queue's store as the workers use it: a MessageStore, or (on the delivery thread) one whose
 * writes go to the writer thread (delivery.ts), hence the promises.
 */
export interface QueueStore {
  claimSoon: MessageStore['claimSoon'];
  settleSoon: MessageStore['settleSoon'];
  renew(owner: string, ids: readonly string[], untilMs: number): void | Promise<void>;
  body: MessageStore['body'];
  releaseLeases: MessageStore['releaseLeases'];
}

export interface QueueDeps {
  messages: QueueStore;
  store: MailStore;
  deliverer: Pick<Deliverer, 'send'>;
  /** How long a claim should wait while the relay accepts on a busy machine (pace.ts); none: never. */
  pace?: Pick<Pace, 'delayMs'>;
  /** Each recorded attempt, for the relay's metrics (relay-metrics.ts recordAttempt). */
  onAttempt?: (a: AttemptMetric) => void;
  now?: () => number;
}

/**
 * True when `owner` (a Queue.owner, `host:pid:nonce`) was a process on this host that no longer
 * runs: its leases will never be renewed or finished. An owner on another host, a live pid (maybe
 * reused by another process) or an owner of another form counts as alive; its leases are waited out.
 */
export function ownerGone(owner: string, host = hostname(), alive = pidAlive): boolean {
  const m = /^(.+):(\d+):[0-9a-f]+$/.exec(owner);
  return m !== null && m[1] === host && Number(m[2]) !== process.pid && !alive(Number(m[2]));
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, not ours to signal
  }
}

export class Queue {
  private readonly log = logger('mail.queue');
  private readonly now: () => number;
  /** Who holds our leases: unique per process start. */
  readonly owner = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  private readonly inFlight = new Map<string, Promise<void>>();
  private running = false;
  private poll?: NodeJS.Timeout;
  private renew?: NodeJS.Timeout;

  constructor(
    private readonly deps: QueueDeps,
    private readonly opts: QueueOptions,
  ) {
    this.now = deps.now ?? Date.now;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    // A relay killed mid-delivery (supervisord restarts it) leaves leases nobody will renew:
    // without this its messages would wait out the whole lease (2 min) before the next attempt.
    try {
      const released = this.deps.messages.releaseLeases(ownerGone, this.now());
      if (released) this.log.info('released the leases of a relay on this host that stopped mid-delivery', { messages: released });
    } catch (e) {
      this.log.warn('releasing stale leases failed; they lapse on their own', { error: (e as Error).message });
    }
    this.poll = setInterval(() => this.tick(), this.opts.pollMs);
    this.renew = setInterval(() => this.renewLeases(), Math.max(1, Math.floor(this.opts.leaseMs / 3)));
    this.tick();
  }

  private waking = false;

  /** Look for due messages soon (a message was just queued, a delivery ended): once per event-loop turn, however many ask. */
  wake(): void {
    if (!this.running || this.waking) return;
    this.waking = true;
    setImmediate(() => {
      this.waking = false;
      this.tick();
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    clearInterval(this.poll);
    clearInterval(this.renew);
    clearTimeout(this.paced);
    this.paced = undefined;
    await this.claiming; // what it claims is delivered (or its lease released by the next start)
    if (!this.inFlight.size) return;
    this.log.info('draining', { in_flight: this.inFlight.size });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.opts.drainMs)));
    await Promise.race([Promise.allSettled(this.inFlight.values()), timeout]);
    clearTimeout(timer);
  }

  /** Set while a claim waits for the pace (pace.ts). */
  private paced?: NodeJS.Timeout;
  /** The claim being committed (one at a time); stop() waits for it. */
  private claiming?: Promise<void>;
  /** A wake() came while claiming: look again once it is in. */
  private rewake = false;

  /** Claims due messages for the free workers (with the other writes of this turn: messageStore.soon()) and starts them. */
  private tick(): void {
    const free = this.opts.workers - this.inFlight.size;
    if (!this.running || free <= 0 || this.paced) return;
    if (this.claiming) {
      this.rewake = true;
      return;
    }
    const delay = this.deps.pace?.delayMs(this.now()) ?? 0;
    if (delay > 0) {
      this.paced = setTimeout(() => {
        this.paced = undefined;
        this.tick();
      }, delay);
      return;
    }
    this.claiming = this.deps.messages.claimSoon(this.owner, free, this.now(), this.opts.leaseMs).then(
      (claimed) => {
        this.claiming = undefined;
        for (const m of claimed) {
          const p = this.process(m).finally(() => {
            this.inFlight.delete(m.id);
            this.wake(); // the deliveries that end in this turn free their slots for one claim
          });
          this.inFlight.set(m.id, p);
        }
        if (this.rewake) {
          this.rewake = false;
          this.wake();
        }
      },
      (e: unknown) => {
        this.claiming = undefined;
        this.log.error('claiming messages failed; retrying at the next poll', { error: (e as Error).message });
      },
    );
  }

  private renewLeases(): void {
    if (!this.inFlight.size) return;
    const failed = (e: unknown) => this.log.warn('renewing leases failed', { error: (e as Error).message });
    try {
      void Promise.resolve(this.deps.messages.renew(this.owner, [...this.inFlight.keys()], this.now() + this.opts.leaseMs)).catch(failed);
    } catch (e) {
      failed(e);
    }
  }


  /** One attempt for `m`. Never throws: an error leaves the lease to lapse, and the message is tried again. */
  private async process(m: Message): Promise<void> {
    try {
      const raw = m.body_id === null ? undefined : this.deps.messages.body(m.body_id);
      const attempt = await this.attempt(m, raw);
      const now = this.now();
      const { self, splits } = settle(m, attempt, now, this.opts.retry);
      // Never a DSN for a DSN (null sender); none without the body, whose headers it returns.
      const withDsn = (p: Part) => ({ ...p, ...(raw && m.mail_from && (p.next.status === 'bounced' || p.next.status === 'failed') ? { dsn: this.dsn(m, p, raw, now) } : {}) });
      const parts = [self, ...splits].map(withDsn);
      const recorded = await this.deps.messages.settleSoon(m.id, this.owner, parts[0]!, parts.slice(1), now);
      const fields = { id: m.id, to: m.recipient_domain, provider: attempt.provider, outcome: attempt.outcome, code: attempt.code, status: self.next.status, duration_ms: attempt.duration_ms };
      if (!recorded) {
        this.log.warn('lease lost before the attempt was recorded; another worker owns the message', fields);
        return;
      }
      const delivered = parts.some((p) => p.next.status === 'delivered');
      this.deps.onAttempt?.({ provider: attempt.provider ?? '', result: attempt.outcome, ...(delivered ? { latencyMs: now - m.created_at_ms } : {}) });
      if (splits.length) this.log.warn('provider answered recipients differently; split the message', { ...fields, parts: [self, ...splits].map((p) => ({ rcpt: p.rcpt_to.length, status: p.next.status, code: p.attempt.code })) });
      else if (attempt.outcome === 'delivered') this.log.info('delivered', fields);
      else this.log.warn('attempt failed', { ...fields, response: attempt.response, next_attempt_at: new Date(self.next.next_attempt_at).toISOString() });
      const dsns = parts.filter((p) => p.dsn).map((p) => p.rcpt_to.length);
      if (dsns.length) {
        this.log.info('DSN queued for the sender', { id: m.id, recipients: dsns });
        this.wake();
      }
    } catch (e) {
      this.log.error('delivery error; the message is retried when its lease lapses', { id: m.id, error: (e as Error).message });
    }
  }

  /** The DSN for the recipients of `p` (final: bounced or failed), addressed to `m`'s sender. */
  private dsn(m: Message, p: Part, raw: Buffer, now: number): Buffer {
    return renderDsn({
      reportingMta: this.opts.hostname ?? hostname(),
      queueId: m.id,
      sender: m.mail_from,
      arrivalMs: m.created_at_ms,
      nowMs: now,
      reason: p.next.status === 'failed' ? 'failed' : 'bounced',
      attempts: m.attempts + 1,
      recipients: p.replies,
      provider: p.attempt.provider,
      original: raw,
      token: randomBytes(12).toString('hex'),
    });
  }

  /** Routes and delivers `m`. A missing route, provider or body is a transient attempt: fixing the settings lets the message go. */
  private async attempt(m: Message, raw: Buffer | undefined): Promise<Attempt> {
    const { store, deliverer } = this.deps;
    const missing = (response: string): Attempt => ({ provider: null, outcome: 'transient', code: null, response, duration_ms: 0 });
    const senderDomain = routeDomain(m);
    const rule = matchRule(store.rules(), { account: m.account, senderDomain, recipientDomain: m.recipient_domain, source: m.source });
    if (!rule) return missing(`no routing rule matches account ${m.account}, ${senderDomain} → ${m.recipient_domain}`);
    const name = providerFor(rule, m.attempts, this.opts.fallbackAfter);
    const provider = store.provider(name);
    if (!provider) return missing(`provider ${name} (rule ${rule.id}) does not exist`);
    if (!raw) return missing('message body missing');
    // Inbound mail is never signed with our keys: its sender is someone else (a forged From: of
    // our own domain would otherwise leave here with our signature). Its own signatures stay.
    const dkim = m.source === 'inbound' ? undefined : store.dkimKey(senderDomain);
    return deliverer.send(provider, { from: m.mail_from, to: m.rcpt_to }, raw, dkim);
  }
}
