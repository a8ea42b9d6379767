// /api/v1/zones: list, export as RFC 1035 text, import such text (all or nothing).
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { exportZone, parseZoneFile } from '../dns/zonefile.js';
import { AppError } from '../errors.js';
import { absolute } from '../model/name.js';
import { recordWrite } from '../model/write.js';
import type { ApiDeps } from './app.js';

const zoneParam = z.object({ zone: z.string().describe('Zone name, e.g. home.arpa') });

export const zoneRoutes =
  (deps: ApiDeps): FastifyPluginAsync =>
  async (plain) => {
    const app = plain.withTypeProvider<ZodTypeProvider>();
    const tags = ['zones'];
    const served = (input: string) => {
      const zone = absolute(input);
      if (!deps.zones.includes(zone)) throw new AppError('not_found', `zone ${zone} is not served (serving ${deps.zones.join(', ')})`);
      return zone;
    };

    app.get('/api/v1/zones', { schema: { tags } }, async () => ({
      zones: deps.zones.map((name) => ({ name, serial: deps.records.serial(name), records: deps.records.count(name) })),
    }));

    app.get('/api/v1/zones/:zone/export', { schema: { tags, params: zoneParam, description: 'RFC 1035 master file (text/plain)' } }, async (req, reply) => {
      const zone = served(req.params.zone);
      return reply.type('text/plain; charset=utf-8').send(exportZone(zone, deps.servedRecords(zone)));
    });

    app.post(
      '/api/v1/zones/:zone/import',
      {
        schema: {
          tags,
          params: zoneParam,
          querystring: z.object({ mode: z.enum(['merge', 'replace']).default('merge'), dry_run: z.enum(['true', 'false']).default('false') }),
          body: z.string().describe('RFC 1035 master file (send as text/plain)'),
          description: 'merge: create or replace the file\'s record sets; replace: also remove every other record set of the zone. Nothing is applied when any line has an error.',
        },
      },
      async (req) => {
        const zone = served(req.params.zone);
        const parsed = parseZoneFile(req.body, zone);
        if (parsed.errors.length)
          throw new AppError('invalid_zone_file', `${parsed.errors.length} line(s) have errors; nothing was applied`, parsed.errors.map((e) => ({ path: `line ${e.line}`, message: e.message })));
        // Records the server synthesises (apex NS, glue) come back in our own exports: leave them synthesised.
        const stored = new Set(deps.records.list({ zone }).map((r) => `${r.name} ${r.type}`));
        const synthesised = new Set(deps.servedRecords(zone).filter((r) => r.type !== 'SOA' && !stored.has(`${r.name} ${r.type}`)).map((r) => JSON.stringify([r.name, r.type, r.values])));
        const writes = parsed.records.map((r, i) => recordWrite(r, [zone], `records.${i}.`)).filter((w) => !synthesised.has(JSON.stringify([w.name, w.data.type, w.data.values])));
        if (req.query.dry_run === 'true') return { dry_run: true, would_apply: writes.length, mode: req.query.mode };
        const before = deps.records.count(zone);
        const results = deps.records.put(writes, req.query.mode === 'replace' ? { replaceZone: zone } : {});
        const after = deps.records.count(zone);
        return {
          applied: results.length,
          created: results.filter((r) => r.created).length,
          removed: before + results.filter((r) => r.created).length - after,
          serial: deps.records.serial(zone),
        };
      },
    );
  };
