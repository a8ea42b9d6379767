// /api/v1/routes/{id}/backends… (issue 15, "Backends"): add or re-weight an upstream, remove it,
// take it out of rotation by hand (dead) and back (alive); the same under /api/v1/routes/by-host/{host}.
// Every write is a whole-route replace through RouteStore.put inside mutate(): checked, planned
// with ?dry_run=true, applied in one transaction.
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AppError } from '../errors.js';
import { upstream } from '../model/name.js';
import { hostName, type Route, type RouteInput, type StoredRoute } from '../model/route.js';
import { backendBody, compactBackends, type BackendOptions, type Backends } from '../model/route-backends.js';
import { backendHealth } from '../proxy/backend-health.js';
import type { ApiDeps } from './app.js';
import { assertNotOwnEndpoint, dryRunQuery, mutate, type MutateRequest } from './mutate.js';
import { DRY_RUN, successes } from './openapi.js';

const ROUTE_ID = /^(api|record):[a-z0-9._*-]{1,253}$/;
const idParam = z.object({ id: z.string().regex(ROUTE_ID, 'must be a route id such as api:1a2b3c4d or record:llm.home.arpa') });
const hostParam = z.object({ host: hostName });
const backendParam = { backend: upstream.describe('the upstream as written in the route (host:port), URL-encoded') };

/** The route as stored again (minus what the store fills in), with these upstreams and backends. */
const inputOf = (r: StoredRoute, upstreams: string[], backends: Backends | undefined): RouteInput => ({
  hosts: r.hosts,
  upstreams,
  tls: r.tls,
  ...(r.path !== null ? { path: r.path } : {}),
  ...(r.health_path !== null ? { health_path: r.health_path } : {}),
  ...(r.balancing ? { balancing: r.balancing } : {}),
  ...(r.health ? { health: r.health } : {}),
  // Every other option group is kept as stored (auth keeps its hashes and tokens).
  ...(r.auth ? { auth: r.auth } : {}),
  ...(r.headers ? { headers: r.headers } : {}),
  ...(r.limits ? { limits: r.limits } : {}),
  ...(r.listen ? { listen: r.listen } : {}),
  ...(backends ? { backends } : {}),
});

/**
 * The routes with `backend_health` (each upstream as written: up / failing / down / dead /
 * unknown, fails, requests; reason, since, next_probe_at for one taken out after failed
 * requests) from Caddy's upstream pool, our dead flags and the recovery watcher's marks, when the API has a
 * Caddy to ask (one read per call); unchanged otherwise or when Caddy does not answer.
 */
export async function withBackendHealth(deps: Pick<ApiDeps, 'upstreamPool' | 'proxy' | 'recovery'>, routes: Route[]): Promise<Route[]> {
  const pool = deps.upstreamPool ? await deps.upstreamPool() : null;
  if (!pool) return routes;
  return routes.map((r) => ({ ...r, backend_health: backendHealth(r.upstreams, r.backends, (u) => dialsOf(deps, u), pool, deps.recovery?.(r.id)) }));
}

/** The addresses Caddy dials for upstream `u` as written (a name resolved as the proxy resolves it). */
function dialsOf(deps: Pick<ApiDeps, 'proxy'>, u: string): string[] {
  const at = u.lastIndexOf(':');
  const host = u.slice(0, at);
  const addresses = host.startsWith('[') || /^\d+\.\d+\.\d+\.\d+$/.test(host) ? undefined : deps.proxy.resolve(host.toLowerCase());
  return addresses === undefined ? [u] : addresses.map((a) => (a.includes(':') ? `[${a}]:${u.slice(at + 1)}` : `${a}:${u.slice(at + 1)}`));
}

export const routeBackends =
  (deps: ApiDeps): FastifyPluginAsync =>
  async (plain) => {
    const app = plain.withTypeProvider<ZodTypeProvider>();
    const tags = ['routes'];

    /** The id of the one route serving `host` (404 none, 409 several: give the id). */
    const byHost = (host: string): string => {
      const found = deps.proxy.views().filter((r) => r.hosts.includes(host));
      if (found.length === 0) throw new AppError('not_found', `no route serves ${host}`);
      if (found.length > 1) throw new AppError('conflict', `${host} is served by several routes (${found.map((r) => r.id).join(', ')}): use /api/v1/routes/{id}`);
      return found[0]!.id;
    };
    const view = (id: string): Route => {
      const v = deps.proxy.view(id);
      if (!v) throw new AppError('not_found', `no route ${id}`);
      return v;
    };
    const stored = (id: string): StoredRoute => {
      if (id.startsWith('record:')) throw new AppError('conflict', `${id} follows its DNS record: set proxy.upstreams / proxy.backends on the record (PUT /api/v1/records/{name}/{type})`);
      const r = deps.routes.get(id);
      if (!r) throw new AppError('not_found', deps.routes.has(id) ? `route ${id} does not parse: replace it (PUT /api/v1/routes/${id})` : `no route ${id}`);
      return r;
    };
    const backendOf = (r: StoredRoute, backend: string): void => {
      if (!r.upstreams.includes(backend)) throw new AppError('not_found', `route ${r.id} has no backend ${backend} (its upstreams: ${r.upstreams.join(', ')})`);
    };
    const withBackend = (r: StoredRoute, backend: string, change: (o: BackendOptions) => BackendOptions) =>
      compactBackends({ ...(r.backends ?? {}), [backend]: change({ ...(r.backends?.[backend] ?? {}) }) });

    /** One write: `edit` gets the stored route and returns its new input; answers the route, or the dry run's plan. */
    const write = async (req: MutateRequest, id: string, edit: (r: StoredRoute) => RouteInput) => {
      const out = await mutate(deps, req, () => {
        const next = edit(stored(id));
        assertNotOwnEndpoint(deps, [], next.upstreams.map((u, i) => [`upstreams.${i}`, u]));
        return { result: deps.routes.put(next, id).route, dns: { added: [], changed: [], removed: [] } };
      });
      return 'dry_run' in out ? out : { route: view(out.id) };
    };

    const add = (body: z.infer<typeof backendBody>) => (r: StoredRoute): RouteInput => {
      const upstreams = r.upstreams.includes(body.address) ? r.upstreams : [...r.upstreams, body.address];
      return inputOf(r, upstreams, body.weight === undefined ? r.backends : withBackend(r, body.address, (o) => ({ ...o, weight: body.weight })));
    };
    const remove = (backend: string) => (r: StoredRoute): RouteInput => {
      backendOf(r, backend);
      if (r.upstreams.length === 1) throw new AppError('conflict', `${backend} is the only backend of ${r.id}: a route needs one; remove the route instead`);
      const { [backend]: _gone, ...rest } = r.backends ?? {};
      return inputOf(r, r.upstreams.filter((u) => u !== backend), compactBackends(rest));
    };
    const mark = (backend: string, dead: boolean) => (r: StoredRoute): RouteInput => {
      backendOf(r, backend);
      return inputOf(r, r.upstreams, withBackend(r, backend, (o) => ({ ...o, dead })));
    };

    // The same operations under two addresses: by id and by host.
    const wanted = [
      { prefix: '/api/v1/routes/:id', params: idParam, idOf: (p: Record<string, string>) => p.id! },
      { prefix: '/api/v1/routes/by-host/:host', params: hostParam, idOf: (p: Record<string, string>) => byHost(p.host!) },
    ] as const;
    app.get('/api/v1/routes/by-host/:host', { schema: { summary: 'Get the proxy route serving a host', response: successes({ 200: 'the route' }), tags, params: hostParam } }, async (req) => ({ route: (await withBackendHealth(deps, [view(byHost(req.params.host))]))[0] }));
    for (const { prefix, params, idOf } of wanted) {
      const one = (params as z.ZodObject).extend(backendParam);
      app.post(`${prefix}/backends`, { schema: { summary: 'Add a backend to a route, or change its weight', response: successes({ 201: 'added', 200: `weight changed, or ${DRY_RUN}` }), tags, params, body: backendBody, querystring: dryRunQuery } }, async (req, reply) => {
        const id = idOf(req.params);
        const had = deps.routes.get(id)?.upstreams.includes(req.body.address) ?? false;
        const out = await write(req, id, add(req.body));
        return 'dry_run' in out ? out : reply.code(had ? 200 : 201).send(out);
      });
      app.delete(`${prefix}/backends/:backend`, { schema: { summary: 'Remove a backend from a route', response: successes({ 200: `removed (the route), or ${DRY_RUN}` }), tags, params: one, querystring: dryRunQuery } }, async (req) => {
        const p = req.params as Record<string, string>;
        return write(req, idOf(p), remove(p.backend!));
      });
      for (const state of ['dead', 'alive'] as const)
        app.post(
          `${prefix}/backends/:backend/${state}`,
          { schema: { summary: state === 'dead' ? 'Take a backend out of rotation by hand (kept until alive)' : 'Put a backend marked dead back into rotation', response: successes({ 200: `the route, or ${DRY_RUN}` }), tags, params: one, querystring: dryRunQuery } },
          async (req) => {
            const p = req.params as Record<string, string>;
            const id = idOf(p);
            const out = await write(req, id, mark(p.backend!, state === 'dead'));
            // By hand wins over the recovery watcher's mark: alive is back in rotation now, dead stays out until alive.
            if (!('dry_run' in out)) for (const dial of dialsOf(deps, p.backend!)) deps.recoveryClear?.(id, dial);
            return out;
          },
        );
    }
  };
