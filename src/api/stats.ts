// GET /api/v1/stats and /api/v1/stats/{host}: per-host traffic over the last minute and hour,
// from Caddy's access log (src/proxy/stats.ts), with the status of the routes serving the host.
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AppError } from '../errors.js';
import { hostName } from '../model/route.js';
import type { HostStatsView } from '../proxy/stats.js';
import type { ApiDeps } from './app.js';
import { successes } from './openapi.js';

const hostParam = z.object({ host: hostName });

/** The 409's message: what is off and how to turn it on. */
export const STATS_OFF = 'per-host stats are off: start the controller with --stats on (DNSPROXY_STATS=on, or stats: true in its config file)';

export const statsRoutes =
  (deps: ApiDeps): FastifyPluginAsync =>
  async (plain) => {
    const app = plain.withTypeProvider<ZodTypeProvider>();
    const tags = ['stats'];
    const description =
      "Requests, status classes, response body bytes and latency percentiles (Caddy's request duration, ms) per host over the last minute (55–60 s) and hour (59–60 min), read from Caddy's access log; `routes` is the status of the routes serving the host (upstream health as the proxy reports it). No client address or query string is kept. 409 feature_off while the setting `stats` is off (the default).";

    /** The routes serving `host` (exact, or a wildcard one label up) with their status. */
    const routesOf = (host: string, all = deps.proxy.views()) => {
      const parent = host.includes('.') ? `*.${host.slice(host.indexOf('.') + 1)}` : null;
      return all
        .filter((r) => r.hosts.some((h) => h === host || h === parent))
        .map((r) => ({ id: r.id, status: r.status, error: r.error ?? null }));
    };
    const withRoutes = (v: HostStatsView, all = deps.proxy.views()) => ({ ...v, routes: routesOf(v.host, all) });
    /** The stats, or a 409 saying how to turn them on. */
    const on = () => {
      if (deps.stats) return deps.stats;
      throw new AppError('feature_off', STATS_OFF);
    };

    app.get('/api/v1/stats', { schema: { summary: 'Per-host traffic of every host seen in the last hour', response: successes({ 200: 'hosts, sorted by name' }), tags, description } }, async () => {
      const stats = on();
      const all = deps.proxy.views();
      return { hosts: stats.all().map((v) => withRoutes(v, all)), counts: stats.counts };
    });

    app.get('/api/v1/stats/:host', { schema: { summary: "One host's traffic (zeros when it had none in the last hour)", response: successes({ 200: 'the host' }), tags, params: hostParam, description } }, async (req) => {
      const host = req.params.host;
      const empty = { host, minute: emptyWindow(), hour: emptyWindow(), last_seen: null };
      return { stats: withRoutes(on().host(host) ?? empty) };
    });
  };

function emptyWindow() {
  return { requests: 0, status: { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 }, bytes: 0, latency_ms: { p50: null, p95: null, p99: null } };
}
