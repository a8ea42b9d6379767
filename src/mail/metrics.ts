// The mail relay's state on the controller's /metrics, read from the shared database at scrape
// time (one scrape of the controller; the relay process keeps no metrics endpoint of its own):
// queue depth by status, delivery attempts in the log by provider and outcome, suppressions, and
// the days left on the STARTTLS certificate the relay presents.
import { X509Certificate } from 'node:crypto';
import client from 'prom-client';
import { registry } from '../metrics.js';
import { prepared, type Db } from '../store/db.js';
import { MESSAGE_STATUSES } from '../model/mail.js';
import type { MailStore } from './store.js';

let source: { db: Db; store: MailStore; now: () => number } | null = null;

const DAY_MS = 86_400_000;

export const mailQueueGauge = new client.Gauge({
  name: 'dnsproxy_mail_queue_messages',
  help: 'Mail messages in the queue by status (final ones until retention deletes them)',
  labelNames: ['status'] as const,
  registers: [registry],
  collect() {
    if (!source) return;
    this.reset();
    const counts = new Map((prepared(source.db, 'SELECT status, count(*) AS n FROM mail_messages GROUP BY status').all() as { status: string; n: number }[]).map((r) => [r.status, r.n]));
    for (const s of MESSAGE_STATUSES) this.labels(s).set(counts.get(s) ?? 0);
  },
});

export const mailAttemptsGauge = new client.Gauge({
  name: 'dnsproxy_mail_delivery_attempts',
  help: 'Delivery attempts in the delivery log (kept for mail_retention_days), by provider and outcome (delivered, transient, permanent)',
  labelNames: ['provider', 'outcome'] as const,
  registers: [registry],
  collect() {
    if (!source) return;
    this.reset();
    for (const r of prepared(source.db, 'SELECT provider, outcome, count(*) AS n FROM mail_deliveries GROUP BY provider, outcome').all() as { provider: string | null; outcome: string; n: number }[])
      this.labels(r.provider ?? '', r.outcome).set(r.n);
  },
});

export const mailSuppressionsGauge = new client.Gauge({
  name: 'dnsproxy_mail_suppressions',
  help: 'Suppressed recipients, by source (bounce, manual)',
  labelNames: ['source'] as const,
  registers: [registry],
  collect() {
    if (!source) return;
    this.reset();
    for (const s of ['bounce', 'manual']) this.labels(s).set(0);
    for (const r of prepared(source.db, 'SELECT source, count(*) AS n FROM mail_suppressions GROUP BY source').all() as { source: string; n: number }[]) this.labels(r.source).set(r.n);
  },
});

export const mailCertDaysGauge = new client.Gauge({
  name: 'dnsproxy_mail_cert_days_to_expiry',
  help: 'Days until the STARTTLS certificate the relay presents expires (negative: expired); absent before the relay first started',
  registers: [registry],
  collect() {
    if (!source) return;
    this.reset();
    const presented = source.store.presentedCert();
    if (!presented) return;
    try {
      const leaf = new X509Certificate(presented.cert);
      this.set(Math.floor((Date.parse(leaf.validTo) - source.now()) / DAY_MS));
    } catch {
      // A certificate that does not parse is shown by GET /api/v1/mail/cert; no figure here.
    }
  },
});

/** Makes /metrics read the mail gauges from `db`; returns the undo. */
export function mailMetricsFrom(db: Db, store: MailStore, now: () => number = Date.now): () => void {
  const mine = { db, store, now };
  source = mine;
  return () => {
    if (source === mine) source = null;
  };
}
