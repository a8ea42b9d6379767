// GET /api/v1/backup: a consistent copy of the database while serving (src/store/backup.ts), as
// one SQLite file. Admin only: it holds every secret (provider passwords, API key hashes, DKIM
// and TLS private keys). Restore is `dnsproxy restore` with the stack stopped (no API route).
import type { FastifyPluginAsync } from 'fastify';
import { createReadStream, openSync, rmSync } from 'node:fs';
import { logger } from '../log/index.js';
import type { ApiDeps } from './app.js';
import { successes } from './openapi.js';

export const backupRoutes =
  (deps: ApiDeps): FastifyPluginAsync =>
  async (app) => {
    const log = logger('backup');
    app.get(
      '/api/v1/backup',
      {
        config: { scope: 'admin' as const },
        schema: {
          summary: 'Download a backup of the database (admin)',
          response: successes({ 200: 'the database as one SQLite file (application/vnd.sqlite3)' }),
          tags: ['backup'],
          description: 'A consistent copy taken while serving (SQLite online backup). It holds every secret: keep it like the data dir. Restore with `dnsproxy restore <file>` while the stack is stopped. Admin only.',
        },
      },
      async (req, reply) => {
        const { file, pages, restarts } = await deps.backup();
        log.info('backup taken', { pages, restarts, by: req.token?.id });
        // Opened, then unlinked at once: the data lives as long as the stream, and nothing is left
        // behind in the data dir whatever happens to the response (or to this process).
        const fd = openSync(file, 'r');
        rmSync(file, { force: true });
        const stream = createReadStream('', { fd });
        const stamp = new Date().toISOString().replace(/[:.]/g, '-');
        return reply.type('application/vnd.sqlite3').header('content-disposition', `attachment; filename="dnsproxy-${stamp}.sqlite"`).header('cache-control', 'no-store').send(stream);
      },
    );
  };
