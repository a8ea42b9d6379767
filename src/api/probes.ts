// Open probes: /health, /ready, /metrics (no token; see auth.ts).
import type { FastifyPluginAsync } from 'fastify';
import { registry } from '../metrics.js';
import type { ApiDeps } from './app.js';

export const probeRoutes =
  (deps: ApiDeps): FastifyPluginAsync =>
  async (app) => {
    app.get('/health', { schema: { tags: ['probes'], security: [] } }, async (_req, reply) => {
      const report = deps.health();
      // The controller's version and Node.js runtime (`dnsproxy status` shows them); /metrics
      // already publishes the runtime as nodejs_version_info, so this tells no one anything new.
      return reply.code(report.status === 'down' ? 503 : 200).send({ ...report, version: deps.version, node: process.version });
    });
    app.get('/ready', { schema: { tags: ['probes'], security: [] } }, async (_req, reply) => {
      const report = deps.health();
      const ready = report.status !== 'down';
      return reply.code(ready ? 200 : 503).send({ ready });
    });
    app.get('/metrics', { schema: { tags: ['probes'], security: [] } }, async (_req, reply) => {
      return reply.type(registry.contentType).send(await registry.metrics());
    });
  };
