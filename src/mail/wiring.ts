// What the controller runs for the mail relay's settings (wiring only): the stores the API
// writes through, and the minute job that moves DKIM rotations on (domains.ts settle()).
import { hostname as osHostname } from 'node:os';
import { KeyRateLimiter } from '../limit.js';
import { accountOfKey, type AccountKeys } from './credentials/account-keys.js';
import { logger } from '../log/index.js';
import type { Db } from '../store/db.js';
import type { RecordStore } from '../store/records.js';
import { MailDomains } from './domains/domains.js';
import { MessageStore, purgeBefore } from './queue/messages.js';
import { mailMetricsFrom } from './metrics.js';
import { MailStore } from './store.js';

/** How often the controller runs the mail jobs (DKIM rotation steps, retention): each is at most this late. */
export const MAIL_JOB_INTERVAL_MS = 60_000;
const DAY_MS = 86_400_000;

export interface MailWiring {
  deps: { store: MailStore; messages: MessageStore; domains: MailDomains; hostname: string; dnsServer: () => { host: string; port: number }; keys: AccountKeys };
  /** Runs the due jobs once (the timer calls it; tests call it with their clock). */
  tick: () => void;
  stop: () => void;
}

/** The relay's host name as the controller publishes it (MX target, MTA-STS mx). */
export const mailHostname = (c: { mail_hostname?: string | undefined }): string => c.mail_hostname ?? osHostname();

/** Where to ask a DNS server that listens on `listenIp` (a wildcard listener answers on loopback). */
export const askAt = (listenIp: string): string => (listenIp === '0.0.0.0' ? '127.0.0.1' : listenIp === '::' ? '::1' : listenIp);

export function mailWiring(o: {
  db: Db;
  records: RecordStore;
  config: { mail_hostname?: string | undefined; node_ip: string; listen_ip: string; api_key_requests_per_minute: number; mail_retention_days: number };
  dnsPort: () => number;
  /** The controller's unit of work (transact()): a job's record writes notify the DNS after commit. */
  transaction: <T>(fn: () => T) => T;
  now?: () => number;
  /** false: no timer (tests tick by hand). */
  timer?: boolean;
}): MailWiring {
  const log = logger('mail.jobs');
  const store = new MailStore(o.db);
  const hostname = mailHostname(o.config);
  const domains = new MailDomains(o.db, o.records, store, { hostname, nodeIp: o.config.node_ip, ...(o.now ? { now: o.now } : {}) });
  const now = o.now ?? Date.now;
  const tick = () => {
    try {
      const changed = o.transaction(() => domains.settle());
      if (changed.length) log.info('DKIM rotation step applied', { domains: changed });
    } catch (e) {
      log.error('DKIM rotation step failed; retried at the next tick', { error: (e as Error).message });
    }
    if (o.config.mail_retention_days > 0)
      try {
        const purged = purgeBefore(o.db, now() - o.config.mail_retention_days * DAY_MS);
        if (purged) log.info('mail retention: old messages deleted', { messages: purged, retention_days: o.config.mail_retention_days });
      } catch (e) {
        log.error('mail retention failed; retried at the next tick', { error: (e as Error).message });
      }
  };
  const unmetrics = mailMetricsFrom(o.db, store, now);
  const timer = o.timer === false ? undefined : setInterval(tick, MAIL_JOB_INTERVAL_MS);
  timer?.unref();
  return {
    deps: { store, messages: new MessageStore(o.db), domains, hostname, dnsServer: () => ({ host: askAt(o.config.listen_ip), port: o.dnsPort() }), keys: accountKeys(store, o.config.api_key_requests_per_minute, now) },
    tick,
    stop: () => {
      clearInterval(timer);
      unmetrics();
    },
  };
}

/** Account API keys as bearer tokens for the mail API, `perMinute` requests a minute each. */
export function accountKeys(store: MailStore, perMinute: number, now: () => number = Date.now): AccountKeys {
  const limiter = new KeyRateLimiter(perMinute, now);
  return { account: (secret) => accountOfKey(store, secret, now()), take: (id) => limiter.take(id), perMinute };
}
