// /api/v1/zones: list, export as RFC 1035 text, import such text (all or nothing).
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { exportZone } from '../dns/zonefile.js';
import { AppError } from '../errors.js';
import { absolute } from '../model/name.js';
import { scopeAllows } from '../model/token.js';
import { planRoutes } from '../proxy/plan.js';
import type { ApiDeps } from './app.js';
import { dryRunQuery } from './mutate.js';
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

    app.get('/api/v1/zones', { schema: { summary: 'List the served zones with serial, record count and imported SOA fields', response: successes({ 200: 'the zones' }), tags } }, async () => ({
      // soa: an imported zone file's SOA fields (null: the configured nameserver, hostmaster and timers).
      zones: deps.zones.map((name) => ({ name, serial: deps.records.serial(name), records: deps.records.count(name), soa: deps.records.soa(name) })),
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
        // Parsed, validated and written on a thread of its own (zone-import.ts): a big file must not stop DNS.
        const synthesised = deps.synthesisedRecords(zone).map((r) => JSON.stringify([r.name, r.type, r.values]));
        const dryRun = req.query.dry_run === 'true';
        // Below admin the thread also runs the scope check (reach.ts) inside its transaction.
        const scope = req.token?.scope ?? 'read';
        const guard = scopeAllows(scope, 'admin') ? null : { scope, ownAddresses: [...deps.ownAddresses] };
        const out = await importOnThread(deps.records, { zone, zones: deps.zones, text: req.body, mode: req.query.mode, dryRun, synthesised, guard });
        if (out.kind === 'applied') return out.result;
        // The DNS plan comes as JSON text: parsing and serialising it again here (a line per record set) would cost the main thread.
        const routes = planRoutes(deps.proxy.build(true).routes, deps.proxy.buildWith(out.proxied).routes);
        return reply.type('application/json; charset=utf-8').send(`{"dry_run":true,"plan":{"dns":${out.dnsJson},"routes":${JSON.stringify(routes)}}}`);
      },
    );
  };
