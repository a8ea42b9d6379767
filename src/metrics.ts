// Prometheus metrics for the whole process, served at /metrics in text format.
import client from 'prom-client';
import { HotHistogram } from './metrics-hot.js';

export const registry = new client.Registry();
client.collectDefaultMetrics({ register: registry });

/** One (qtype, rcode, transport) series of dnsQueries: the DNS server bumps `n`; a scrape adds it to the counter. */
export interface QueryTally {
  n: number;
}

const queryTallies: { labels: { qtype: string; rcode: string; transport: string }; tally: QueryTally; reported: number }[] = [];

export const dnsQueries = new client.Counter({
  name: 'dnsproxy_dns_queries_total',
  help: 'DNS queries answered, by query type, response code and transport',
  labelNames: ['qtype', 'rcode', 'transport'] as const,
  registers: [registry],
  collect() {
    for (const t of queryTallies) {
      if (t.tally.n === t.reported) continue;
      this.inc(t.labels, t.tally.n - t.reported);
      t.reported = t.tally.n;
    }
  },
});

/** A plain-number series of dnsQueries, cheap enough to bump per query (prom-client hashes labels on every inc). */
export function dnsQueryTally(qtype: string, rcode: string, transport: string): QueryTally {
  const tally = { n: 0 };
  queryTallies.push({ labels: { qtype, rcode, transport }, tally, reported: 0 });
  return tally;
}

export const dnsLatency = new HotHistogram({
  name: 'dnsproxy_dns_request_duration_seconds',
  help: 'Time from receiving a DNS query to sending the answer',
  labelName: 'transport',
  buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 2.5],
  registry,
});

export const apiRequests = new client.Counter({
  name: 'dnsproxy_api_requests_total',
  help: 'HTTP API requests, by route, method and status code',
  labelNames: ['route', 'method', 'status'] as const,
  registers: [registry],
});

export const apiLatency = new client.Histogram({
  name: 'dnsproxy_api_request_duration_seconds',
  help: 'HTTP API request latency, by route',
  labelNames: ['route', 'method'] as const,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  registers: [registry],
});

/** Counts record sets per zone when /metrics is read (see countRecordsWith). */
let recordCounts: (() => ReadonlyMap<string, number>) | null = null;

export const recordsGauge = new client.Gauge({
  name: 'dnsproxy_records',
  help: 'Record sets stored, by zone',
  labelNames: ['zone'] as const,
  registers: [registry],
  collect() {
    if (!recordCounts) return;
    this.reset();
    for (const [zone, n] of recordCounts()) this.labels(zone).set(n);
  },
});

/**
 * The record-set gauge reads `counts` when /metrics is scraped, not on every change: counting
 * 150,000 rows takes ~30 ms of the main thread, which a zone import paid per change (DNS stalled).
 */
export function countRecordsWith(counts: () => ReadonlyMap<string, number>): () => void {
  recordCounts = counts;
  return () => {
    if (recordCounts === counts) recordCounts = null;
  };
}

export const caddyApplies = new client.Counter({
  name: 'dnsproxy_caddy_applies_total',
  help: 'Config loads sent to Caddy, by result (ok, rejected, unavailable)',
  labelNames: ['result'] as const,
  registers: [registry],
});

/**
 * Caddy config loads that succeeded, by why they were needed: `startup` (first push of this
 * process), `change` (the explicit routes changed), `restore` (Caddy restarted, or ran another
 * config: the marker did not match). Each one closes every proxied websocket; plain names'
 * changes never count here (they go through DNS).
 */
export const caddyLoads = new client.Counter({
  name: 'dnsproxy_caddy_loads_total',
  help: 'Config loads Caddy accepted, by reason (startup, change, restore, close_sessions)',
  labelNames: ['reason'] as const,
  registers: [registry],
});

/**
 * Passes of the change pipeline (src/proxy/pipeline.ts) over committed record/route changes, by
 * what they asked of Caddy: `trigger` (the explicit routes or settings changed), `close_sessions`
 * (a plain name with websockets went away), `unchanged` (DNS only: no load asked for). A pass
 * counts once its work is done, so a caller can tell a no-op change was handled, not just not yet.
 */
export const proxyPasses = new client.Counter({
  name: 'dnsproxy_proxy_passes_total',
  help: 'Change pipeline passes, by what they asked of Caddy (trigger, close_sessions, unchanged)',
  labelNames: ['outcome'] as const,
  registers: [registry],
});

export const caddyApplyDuration = new client.Histogram({
  name: 'dnsproxy_caddy_apply_duration_seconds',
  help: 'Time for one POST /load to Caddy, whatever its result',
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
});

export const caddyUp = new client.Gauge({
  name: 'dnsproxy_caddy_up',
  help: '1 when the Caddy admin API answered the last request, else 0',
  registers: [registry],
});

export const proxyRoutes = new client.Gauge({
  name: 'dnsproxy_proxy_routes',
  help: 'Proxy routes after the last apply, by status (active, error)',
  labelNames: ['status'] as const,
  registers: [registry],
});
