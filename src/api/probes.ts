// Open probes: /health, /ready, /metrics (no token; see auth.ts).
import type { FastifyPluginAsync } from 'fastify';
import { registry } from '../metrics.js';
import type { ApiDeps } from './app.js';
import { bearerOf } from './auth.js';
import type { HealthReport } from './health.js';
import { successes } from './openapi.js';

const statusOnly = (r: HealthReport): HealthReport => ({ status: r.status, components: Object.fromEntries(Object.entries(r.components).map(([name, c]) => [name, { status: c.status }])) });

export const probeRoutes =
  (deps: ApiDeps): FastifyPluginAsync =>
  async (app) => {
    // Open to load balancers and supervisors, which need the status only; the details (error text
    // from Caddy, the store, the relay) go only to a request with a valid token.
    app.get('/health', { schema: { summary: 'Component status (details with a token)', response: successes({ 200: 'up or degraded', 503: 'down' }), tags: ['probes'], security: [], description: 'Status of each component; the details only with a valid bearer token' } }, async (req, reply) => {
      const report = deps.health();
      const token = bearerOf(req);
      const shown = token && deps.tokens.verify(token) ? report : statusOnly(report);
      // The controller's version and Node.js runtime (`dnsproxy status` shows them); /metrics
      // already publishes the runtime as nodejs_version_info, so this tells no one anything new.
      return reply.code(report.status === 'down' ? 503 : 200).send({ ...shown, version: deps.version, node: process.version });
    });
    app.get('/ready', { schema: { summary: 'Readiness for a load balancer', response: successes({ 200: 'ready', 503: 'not ready (a component is down)' }), tags: ['probes'], security: [] } }, async (_req, reply) => {
      const report = deps.health();
      const ready = report.status !== 'down';
      return reply.code(ready ? 200 : 503).send({ ready });
    });
    app.get('/metrics', { schema: { summary: 'Prometheus metrics', response: successes({ 200: 'Prometheus text format' }), tags: ['probes'], security: [] } }, async (_req, reply) => {
      return reply.type(registry.contentType).send(await registry.metrics());
    });
  };
