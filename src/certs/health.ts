// Certificate expiry on /metrics and /health. Pure rule (certHealth) plus a gauge read from the
// store when /metrics is scraped: days to expiry per certificate. /health's `certificates`
// component is `degraded` when a certificate expires within EXPIRY_ALARM_DAYS and nothing will
// renew it in time: its ACME renewal is failing, or it was uploaded (nothing renews those).
import client from 'prom-client';
import type { HealthReport } from '../api/health.js';
import { registry } from '../metrics.js';
import type { CertificateStore } from './store.js';

const DAY_MS = 86_400_000;
/** A certificate this close to expiry with no working renewal degrades /health (issue 16: 7 days). */
export const EXPIRY_ALARM_DAYS = 7;
/** At most this many certificates are named in the health detail. */
const NAMED = 5;

export interface CertState {
  id: string;
  names: readonly string[];
  not_after_ms: number;
  /** null: uploaded (nothing renews it). */
  renewal: { failures: number; last_error: string | null } | null;
}

/** The `certificates` component of /health for `certs` at `nowMs`. */
export function certHealth(certs: readonly CertState[], nowMs: number): HealthReport['components'][string] {
  if (!certs.length) return { status: 'disabled' };
  const soon = certs.filter((c) => c.not_after_ms - nowMs < EXPIRY_ALARM_DAYS * DAY_MS && (c.renewal === null || c.renewal.failures > 0));
  if (!soon.length) return { status: 'ok' };
  const what = (c: CertState) => {
    const days = Math.floor((c.not_after_ms - nowMs) / DAY_MS);
    const when = c.not_after_ms <= nowMs ? 'expired' : `expires in ${days} day${days === 1 ? '' : 's'}`;
    const why = c.renewal === null ? 'uploaded: nothing renews it' : `renewal failing (${c.renewal.failures}×: ${c.renewal.last_error ?? 'unknown'})`;
    return `${c.id} (${c.names.join(', ')}) ${when}, ${why}`;
  };
  return { status: 'degraded', detail: `${soon.slice(0, NAMED).map(what).join('; ')}${soon.length > NAMED ? `; and ${soon.length - NAMED} more` : ''}` };
}

/** The store's certificates as certHealth() reads them. */
export function certStates(store: CertificateStore): CertState[] {
  const renewals = new Map(store.renewals().map((r) => [r.id, r.renewal]));
  return store.served().map((c) => ({ id: c.id, names: c.names, not_after_ms: c.not_after_ms, renewal: renewals.get(c.id) ?? null }));
}

let source: { store: CertificateStore; now: () => number } | null = null;

export const certDaysGauge = new client.Gauge({
  name: 'dnsproxy_certificate_days_to_expiry',
  help: 'Days until each stored certificate (src/certs: uploaded or ACME-issued) expires; negative: expired',
  labelNames: ['id', 'names', 'source'] as const,
  registers: [registry],
  collect() {
    if (!source) return;
    this.reset();
    for (const c of source.store.list()) this.labels(c.id, c.names.join(','), c.source).set(Math.floor((Date.parse(c.not_after) - source.now()) / DAY_MS));
  },
});

/** Makes /metrics read the certificate gauge from `store`; returns the undo. */
export function certMetricsFrom(store: CertificateStore, now: () => number = Date.now): () => void {
  const mine = { store, now };
  source = mine;
  return () => {
    if (source === mine) source = null;
  };
}
