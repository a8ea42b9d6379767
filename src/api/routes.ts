// /api/v1/routes (explicit and record-derived routes with their status), /api/v1/plan, /api/v1/caddyfile.
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AppError } from '../errors.js';
import { routeBody } from '../model/route.js';
import { missingSecrets, withStoredAuth, type RouteAuth } from '../model/route-auth.js';
import { forwardDial, hashPasswords } from '../proxy/auth.js';
import { planRoutes } from '../proxy/plan.js';
import type { ApiDeps } from './app.js';
import { withBackendHealth } from './routes-backends.js';
import { assertNoClash, assertNotOwnEndpoint, dryRunQuery, mutate } from './mutate.js';
import { assertListen } from './listen.js';
import { DRY_RUN, successes } from './openapi.js';

const idParam = z.object({ id: z.string().regex(/^(api|record):[a-z0-9._*-]{1,253}$/, 'must be a route id such as api:1a2b3c4d or record:llm.home.arpa') });

export const proxyRoutes =
  (deps: ApiDeps): FastifyPluginAsync =>
  async (plain) => {
    const app = plain.withTypeProvider<ZodTypeProvider>();
    const tags = ['routes'];
    const view = (id: string) => {
      const v = deps.proxy.view(id);
      if (!v) throw new AppError('not_found', `no route ${id}`);
      return v;
    };
    const apiOnly = (id: string) => {
      if (id.startsWith('record:')) throw new AppError('conflict', `${id} follows its DNS record: change or remove the record, or disable its proxy`);
    };

    app.get('/api/v1/routes', { schema: { summary: 'List proxy routes with their status', response: successes({ 200: 'the routes' }), tags } }, async () => ({ routes: await withBackendHealth(deps, deps.proxy.views()) }));
    app.get('/api/v1/routes/:id', { schema: { summary: 'Get one proxy route', response: successes({ 200: 'the route' }), tags, params: idParam } }, async (req) => ({ route: (await withBackendHealth(deps, [view(req.params.id)]))[0] }));

    const assertSafe = (body: { hosts: string[]; upstreams: string[]; auth?: RouteAuth | undefined }) =>
      assertNotOwnEndpoint(deps, body.hosts.map((h, i) => [`hosts.${i}`, h]), [
        ...body.upstreams.map((u, i): [string, string] => [`upstreams.${i}`, u]),
        ...(body.auth?.forward ? [['auth.forward.url', forwardDial(new URL(body.auth.forward.url))] as [string, string]] : []),
      ]);

    /** A body's auth secrets present (a password or hash per account, the tokens), then passwords hashed: only hashes are stored. */
    const secured = async <T extends { auth?: RouteAuth | undefined }>(given: T, id?: string): Promise<T> => {
      // A replaced route keeps the secrets the body leaves out (same user name; the tokens).
      const stored = id === undefined ? undefined : deps.routes.get(id)?.auth;
      const body = given.auth && stored ? { ...given, auth: withStoredAuth(given.auth, stored) } : given;
      const missing = missingSecrets(body.auth);
      if (missing.length) throw new AppError('invalid_body', undefined, missing.map(([path, message]) => ({ path, message })));
      return hashPasswords(body, stored);
    };

    // Checks and write in one transaction (mutate): nothing can slip in between them.
    app.post('/api/v1/routes', { schema: { summary: 'Create a proxy route', response: successes({ 201: 'created', 200: DRY_RUN }), tags, body: routeBody, querystring: dryRunQuery } }, async (req, reply) => {
      const body = await secured(req.body);
      const out = await mutate(deps, req, () => {
        assertSafe(body);
        assertNoClash(deps, { id: '', hosts: body.hosts, path: body.path ?? null });
        assertListen(deps, '', body);
        return { result: deps.routes.put(body).route, dns: { added: [], changed: [], removed: [] } };
      });
      return 'dry_run' in out ? out : reply.code(201).send({ route: view(out.id) });
    });

    // A stored row that no longer parses can be replaced here (it is listed with status error).
    app.put('/api/v1/routes/:id', { schema: { summary: 'Replace a proxy route', response: successes({ 200: `replaced, or ${DRY_RUN}` }), tags, params: idParam, body: routeBody, querystring: dryRunQuery } }, async (req) => {
      apiOnly(req.params.id);
      const body = await secured(req.body, req.params.id);
      const out = await mutate(deps, req, () => {
        if (!deps.routes.has(req.params.id)) throw new AppError('not_found', `no route ${req.params.id}`);
        assertSafe(body);
        assertNoClash(deps, { id: req.params.id, hosts: body.hosts, path: body.path ?? null });
        assertListen(deps, req.params.id, body);
        return { result: deps.routes.put(body, req.params.id).route, dns: { added: [], changed: [], removed: [] } };
      });
      return 'dry_run' in out ? out : { route: view(out.id) };
    });

    app.delete('/api/v1/routes/:id', { schema: { summary: 'Delete a proxy route', response: successes({ 204: 'deleted', 200: DRY_RUN }), tags, params: idParam, querystring: dryRunQuery } }, async (req, reply) => {
      apiOnly(req.params.id);
      const out = await mutate(deps, req, () => ({ result: deps.routes.remove(req.params.id), dns: { added: [], changed: [], removed: [] } }));
      return 'dry_run' in out ? out : reply.code(204).send();
    });

    app.get('/api/v1/plan', { schema: { summary: 'What Caddy would change to reach the desired routes', response: successes({ 200: 'the plan' }), tags, description: 'Routes Caddy would change to reach the desired state (explicit routes only: plain names are served through DNS) and whether that needs a Caddy reload; DNS changes apply at once, so its part is empty' } }, async () => {
      const status = deps.proxyStatus();
      // Caddy's config carries the explicit routes only; plain names are live as soon as DNS has them.
      // Compared with what the reconciler renders (health-dead backends out, least_latency order), not the bare routes.
      const routes = planRoutes(status.applied?.routes ?? [], deps.plannedRoutes?.() ?? deps.proxy.split().explicit);
      return {
        caddy_up: status.caddyUp,
        in_sync: status.inSync,
        last_error: status.lastError,
        plan: { dns: { added: [], changed: [], removed: [] }, routes, caddy_reload: routes.added.length + routes.changed.length + routes.removed.length > 0 },
      };
    });

    app.get('/api/v1/caddyfile', { schema: { summary: 'Export the routes as a Caddyfile', response: successes({ 200: 'the Caddyfile (text/plain)' }), tags, description: 'The routes as a human-readable Caddyfile (text/plain)' } }, async (_req, reply) =>
      reply.type('text/plain; charset=utf-8').send(deps.caddyfile(deps.proxy.desiredAll())),
    );
  };
