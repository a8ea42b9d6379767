// The relay's own counters (the relay is its own process): SMTP connections by listener and
// outcome, sessions open, messages accepted or refused by reason, AUTH results, delivery attempts
// by provider and result and the enqueue → delivered latency by provider (counted on the delivery
// thread, reported to the main thread: recordAttempt()). Served on a second Prometheus endpoint,
// `http://<listen_ip>:<mail_metrics_port>/metrics`, when that is set; the queue depth, the logged
// attempts and the certificate are on the controller's /metrics (metrics.ts).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import client from 'prom-client';

export const relayRegistry = new client.Registry();

export type Listener = 'smtp' | 'submission' | 'smtps';

export const relayConnections = new client.Counter({
  name: 'dnsproxy_mail_connections_total',
  help: 'SMTP connections by listener and outcome (accepted, or the refusal code: mail_client_limit, mail_connection_rate, …)',
  labelNames: ['listener', 'outcome'] as const,
  registers: [relayRegistry],
});

export const relaySessions = new client.Gauge({
  name: 'dnsproxy_mail_sessions_active',
  help: 'SMTP sessions open now, by listener',
  labelNames: ['listener'] as const,
  registers: [relayRegistry],
});

export const relayMessages = new client.Counter({
  name: 'dnsproxy_mail_messages_total',
  help: 'Messages accepted (queued) or refused, by listener and reason (accepted, or the refusal code at MAIL FROM, RCPT TO or DATA)',
  labelNames: ['listener', 'result', 'reason'] as const,
  registers: [relayRegistry],
});

export const relayAuth = new client.Counter({
  name: 'dnsproxy_mail_auth_total',
  help: 'SMTP AUTH attempts by result (ok, or the refusal code: mail_auth_failed, mail_auth_locked, mail_auth_busy, …)',
  labelNames: ['listener', 'result'] as const,
  registers: [relayRegistry],
});

export const relayDeliveryAttempts = new client.Counter({
  name: 'dnsproxy_mail_delivery_attempts_total',
  help: 'Delivery attempts since the relay started, by provider (empty: no rule or provider matched) and result (delivered, transient, permanent)',
  labelNames: ['provider', 'result'] as const,
  registers: [relayRegistry],
});

/** Seconds from 50 ms (a provider on the LAN) to a day (retries under the default backoff). */
export const DELIVERY_LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600];

export const relayDeliveryLatency = new client.Histogram({
  name: 'dnsproxy_mail_delivery_latency_seconds',
  help: 'From a message being queued to a provider taking it (retries included), by provider',
  labelNames: ['provider'] as const,
  buckets: DELIVERY_LATENCY_BUCKETS,
  registers: [relayRegistry],
});

/** One recorded delivery attempt, as the queue reports it (queue.ts QueueDeps.onAttempt). */
export interface AttemptMetric {
  provider: string;
  result: 'delivered' | 'transient' | 'permanent';
  /** Queued → delivered, when some recipients were delivered by this attempt. */
  latencyMs?: number;
}

/** Counts one attempt (on the main thread: the delivery thread posts it, queue-threads.ts). */
export function recordAttempt(a: AttemptMetric): void {
  relayDeliveryAttempts.labels(a.provider, a.result).inc();
  if (a.latencyMs !== undefined) relayDeliveryLatency.labels(a.provider).observe(Math.max(0, a.latencyMs) / 1000);
}

/** The code of an smtpError() (errors.ts), or `error` for anything else. */
export const reasonOf = (e: Error | null | undefined): string => ((e as { code?: unknown } | null | undefined)?.code as string | undefined) ?? 'error';

/** Serves relayRegistry at /metrics on `host:port` (0: a free port); resolves with the port. */
export async function serveRelayMetrics(host: string, port: number): Promise<{ port: number; close: () => Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    relayRegistry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': relayRegistry.contentType }).end(text),
      (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(e as Error).message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return { port: (server.address() as AddressInfo).port, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
