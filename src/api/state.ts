// /api/v1/state: the whole desired state as one document (src/state). GET exports it (YAML by
// default, secrets left out); POST applies one in a single transaction, ?dry_run=true shows the
// plan without applying, ?prune=true also removes what the document lacks. Admin only: a state
// file can change everything, tokens excepted.
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { logger } from '../log/index.js';
import { parseStateTextOffThread, toYaml } from '../state/format.js';
import { applyDocument, exportState, STATE_AREAS } from '../state/state.js';
import type { ApiDeps } from './app.js';
import { dryRunQuery } from './mutate.js';
import { successes } from './openapi.js';

/** Media types a state document may be sent as besides JSON (read as YAML; JSON is YAML too). */
const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml'];

export const stateRoutes =
  (deps: ApiDeps): FastifyPluginAsync =>
  async (plain) => {
    const app = plain.withTypeProvider<ZodTypeProvider>();
    const log = logger('api.state');
    const tags = ['state'];
    const admin = { scope: 'admin' as const };
    app.addContentTypeParser(YAML_TYPES, { parseAs: 'string' }, (_req, body, done) => done(null, body));

    app.get(
      '/api/v1/state',
      {
        config: admin,
        schema: {
          summary: 'Export the whole desired state (admin)',
          response: successes({ 200: 'the state document: YAML (application/yaml), or JSON with format=json' }),
          tags,
          querystring: z.object({ format: z.enum(['yaml', 'json']).default('yaml') }).strict(),
          description: 'Zones with their SOA settings (an imported SOA included), split-horizon views, record sets with their proxy settings and per-view values (a set bound to a tailnet device as its target_device), routes (device:<name>:<port> upstreams included), mail domains, accounts, providers and rules. Secrets (passwords, provider credentials, DKIM keys, API tokens and keys) are left out. The same state always gives the same bytes.',
        },
      },
      async (req, reply) => {
        const doc = exportState(deps);
        return req.query.format === 'json' ? doc : reply.type('application/yaml; charset=utf-8').send(toYaml(doc));
      },
    );

    app.post(
      '/api/v1/state',
      {
        config: admin,
        schema: {
          summary: 'Apply a state document in one transaction (admin)',
          response: successes({ 200: 'the plan: what was (dry run: would be) added, changed and removed per area, and the proxy routes' }),
          tags,
          querystring: dryRunQuery.extend({ prune: z.enum(['true', 'false']).default('false').describe('Also remove what the document lacks') }).strict(),
          body: z.unknown().describe('The state document: YAML (application/yaml, text/plain) or JSON'),
          description: `Creates and replaces what differs from the document; with prune=true removes what it lacks (without, the plan lists it under not_in_file). All or nothing: a refusal names the field (records.3.values.0) and writes nothing. Secrets left out of the document are kept. Areas: ${STATE_AREAS.join(', ')}.`,
        },
      },
      async (req) => {
        const raw = typeof req.body === 'string' ? await parseStateTextOffThread(req.body) : req.body;
        const out = await applyDocument(deps, raw, { dryRun: req.query.dry_run === 'true', prune: req.query.prune === 'true' });
        if (!out.dry_run && out.changed) log.info('state applied', { by: req.token?.id, prune: out.prune, ...summary(out.plan) });
        return out;
      },
    );
  };

/** Counts per area and kind, for a log line (names would be a zone's worth). */
export function summary(plan: Record<string, { added: string[]; changed: string[]; removed: string[] }>): Record<string, string> {
  return Object.fromEntries(Object.entries(plan).flatMap(([area, p]) => (p.added.length + p.changed.length + p.removed.length ? [[area, `+${p.added.length} ~${p.changed.length} -${p.removed.length}`]] : [])));
}
