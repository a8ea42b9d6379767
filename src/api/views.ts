// /api/v1/views: split-horizon views (src/model/view.ts). A view is a name and client networks;
// record sets (A/AAAA) give per-view values in their `views` field. Networks of two views never
// overlap (400 naming the field); a view still named by a record set cannot be removed (409).
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AppError } from '../errors.js';
import { viewBody, viewName } from '../model/view.js';
import type { ApiDeps } from './app.js';
import { applyOrPlan, DRY_RUN_ONLY } from './mail-plan.js';
import { DRY_RUN, successes } from './openapi.js';

const nameParam = z.object({ name: viewName });

export const viewRoutes =
  (deps: ApiDeps): FastifyPluginAsync =>
  async (plain) => {
    const app = plain.withTypeProvider<ZodTypeProvider>();
    const tags = ['views'];
    const description = 'Clients whose source address is in one of the view\'s networks get the per-view values of record sets that have them (UDP and TCP alike); other clients get the sets\' own values.';

    app.get('/api/v1/views', { schema: { summary: 'List split-horizon views', response: successes({ 200: 'the views' }), tags, description } }, async () => ({ views: deps.views.list() }));

    app.get('/api/v1/views/:name', { schema: { summary: 'Get one view', response: successes({ 200: 'the view' }), tags, params: nameParam } }, async (req) => {
      const view = deps.views.get(req.params.name);
      if (!view) throw new AppError('not_found', `no view ${req.params.name}`);
      return { view };
    });

    app.post('/api/v1/views', { schema: { summary: 'Create a view', response: successes({ 201: 'created', 200: DRY_RUN }), tags, body: viewBody, querystring: DRY_RUN_ONLY, description } }, async (req, reply) => {
      const out = applyOrPlan(deps, req, 'views', () => {
        const put = deps.views.put(req.body, { create: true });
        return { result: put, plan: { added: [`view ${req.body.name} (${req.body.cidrs.join(', ')})`] } };
      });
      return 'dry_run' in out ? out : reply.code(201).send({ view: out.view });
    });

    app.put('/api/v1/views/:name', { schema: { summary: 'Create or replace a view', response: successes({ 201: 'created', 200: `replaced, or ${DRY_RUN}` }), tags, params: nameParam, body: viewBody, querystring: DRY_RUN_ONLY, description } }, async (req, reply) => {
      if (req.body.name !== req.params.name) throw new AppError('invalid_body', undefined, [{ path: 'name', message: 'must match the URL' }]);
      const out = applyOrPlan(deps, req, 'views', () => {
        const put = deps.views.put(req.body, { create: false });
        return { result: put, plan: put.created ? { added: [`view ${req.body.name}`] } : { changed: [`view ${req.body.name} (${req.body.cidrs.join(', ')})`] } };
      });
      return 'dry_run' in out ? out : reply.code(out.created ? 201 : 200).send({ view: out.view });
    });

    app.delete('/api/v1/views/:name', { schema: { summary: 'Delete a view', response: successes({ 204: 'deleted', 200: DRY_RUN }), tags, params: nameParam, querystring: DRY_RUN_ONLY, description: 'Refused (409) while a record set gives values for it' } }, async (req, reply) => {
      const out = applyOrPlan(deps, req, 'views', () => ({ result: deps.views.remove(req.params.name), plan: { removed: [`view ${req.params.name}`] } }));
      if (out) return out;
      return reply.code(204).send();
    });
  };
