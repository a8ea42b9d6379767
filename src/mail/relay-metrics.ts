// The relay's own counters (the relay is its own process): SMTP connections by listener and
// outcome, sessions open, messages accepted or refused by reason, AUTH results. Served on a second
// Prometheus endpoint, `http://<listen_ip>:<mail_metrics_port>/metrics`, when that is set; the
// queue, delivery attempts and certificate are on the controller's /metrics (metrics.ts).
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
