// /api/v1/zones: list, export as RFC 1035 text, import such text (all or nothing).
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { exportZone, parseZoneFile } from '../dns/zonefile.js';
import { AppError } from '../errors.js';
import { absolute } from '../model/name.js';
import { scopeAllows } from '../model/token.js';
import { recordWrite } from '../model/write.js';
import { planRoutes } from '../proxy/plan.js';
import type { ApiDeps } from './app.js';
import { dnsPlan, dryRunQuery, mutate } from './mutate.js';
import { importOnThread } from './zone-import.js';
import { DRY_RUN, successes } from './openapi.js';

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

    app.get('/api/v1/zones', { schema: { summary: 'List the served zones with serial and record count', response: successes({ 200: 'the zones' }), tags } }, async () => ({
      zones: deps.zones.map((name) => ({ name, serial: deps.records.serial(name), records: deps.records.count(name) })),
    }));

    app.get('/api/v1/zones/:zone/export', { schema: { summary: 'Export a zone as a master file', response: successes({ 200: 'the zone file (text/plain)' }), tags, params: zoneParam, description: 'RFC 1035 master file (text/plain)' } }, async (req, reply) => {
      const zone = served(req.params.zone);
      return reply.type('text/plain; charset=utf-8').send(exportZone(zone, deps.servedRecords(zone)));
    });

    app.post(
      '/api/v1/zones/:zone/import',
      {
        schema: {
          summary: 'Import a master file into a zone (merge or replace)',
          response: successes({ 200: `imported (counts and the new serial), or ${DRY_RUN}` }),
          tags,
          params: zoneParam,
          querystring: dryRunQuery.extend({ mode: z.enum(['merge', 'replace']).default('merge') }),
          body: z.string().describe('RFC 1035 master file (send as text/plain)'),
          description: 'merge: create or replace the file\'s record sets; replace: also remove every other record set of the zone. Nothing is applied when any line has an error.',
        },
      },
      async (req, reply) => {
        const zone = served(req.params.zone);
        // Below admin an import must pass the scope check, which looks at the upstreams before and
        // after the write inside its transaction (mutate): that runs on this thread. Admin imports,
        // which need no such check, are parsed and written on a thread of their own.
        if (!scopeAllows(req.token?.scope ?? 'read', 'admin')) {
          const parsed = parseZoneFile(req.body, zone);
          if (parsed.errors.length)
            throw new AppError('invalid_zone_file', `${parsed.errors.length} line(s) have errors; nothing was applied`, parsed.errors.map((e) => ({ path: `line ${e.line}`, message: e.message })));
          const placed = parsed.records.map((r, i) => recordWrite(r, [zone], `records.${i}.`));
          const replace = req.query.mode === 'replace';
          return mutate(deps, req, () => {
            // Records the server synthesises (apex NS, glue) come back in our own exports: leave them synthesised.
            const current = new Map(deps.records.list({ zone }).map((r) => [`${r.name} ${r.type}`, r]));
            const synthesised = new Set(deps.servedRecords(zone).filter((r) => r.type !== 'SOA' && !current.has(`${r.name} ${r.type}`)).map((r) => JSON.stringify([r.name, r.type, r.values])));
            // Zone files carry no proxy settings or service names: an imported set keeps the ones it had.
            const writes = placed
              .filter((w) => !synthesised.has(JSON.stringify([w.name, w.data.type, w.data.values])))
              .map((w) => {
                const had = current.get(`${w.name} ${w.data.type}`);
                return had ? { ...w, proxy: had.proxy, service_name: had.service_name } : w;
              });
            const results = deps.records.put(writes, replace ? { replaceZone: zone } : {});
            const kept = new Set(results.map((r) => `${r.record.name} ${r.record.type}`));
            const removed = replace ? [...current].filter(([k]) => !kept.has(k)).map(([, r]) => r) : [];
            const dns = dnsPlan(results, removed);
            const warnings = parsed.warnings.map((w) => ({ path: `line ${w.line}`, message: w.message }));
            return { result: { applied: results.length, created: dns.added.length, removed: removed.length, serial: deps.records.serial(zone), ...(warnings.length ? { warnings } : {}) }, dns };
          });
        }
        // Parsed, validated and written on a thread of its own (zone-import.ts): a big file must not stop DNS.
        const synthesised = deps.synthesisedRecords(zone).map((r) => JSON.stringify([r.name, r.type, r.values]));
        const dryRun = req.query.dry_run === 'true';
        const out = await importOnThread(deps.records, { zone, zones: deps.zones, text: req.body, mode: req.query.mode, dryRun, synthesised });
        if (out.kind === 'applied') return out.result;
        // The DNS plan comes as JSON text: parsing and serialising it again here (a line per record set) would cost the main thread.
        const routes = planRoutes(deps.proxy.build(true).routes, deps.proxy.buildWith(out.proxied).routes);
        return reply.type('application/json; charset=utf-8').send(`{"dry_run":true,"plan":{"dns":${out.dnsJson},"routes":${JSON.stringify(routes)}}}`);
      },
    );
  };
