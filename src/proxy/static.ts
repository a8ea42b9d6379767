// Routes Caddy answers itself (`static_response`) instead of proxying: the route kind for text this
// project generates, e.g. a mail domain's MTA-STS policy (src/mail/domains/mta-sts.ts). Kept apart from
// render.ts, which only asks routeHandler() for a route's handler and staticProblem() in selectRoutes().
import { staticResponse } from '../model/route.js';
import type { DesiredRoute } from './types.js';

type Json = Record<string, unknown>;

/**
 * Why a route's static answer must not be rendered, or null (also null for a proxy route). The
 * body was generated from validated fields; it is checked again here, the last step before Caddy.
 */
export function staticProblem(r: DesiredRoute): string | null {
  if (r.respond === undefined) return null;
  if (r.upstreams.length > 0) return 'a static response route has no upstreams';
  const parsed = staticResponse.safeParse(r.respond);
  return parsed.success ? null : `static response: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(response)'}: ${i.message}`).join('; ')}`;
}

/** The handler of a static route, keys in sorted order (render() relies on it: canon()). */
export function staticHandler(r: DesiredRoute & { respond: NonNullable<DesiredRoute['respond']> }): Json {
  return {
    body: r.respond.body,
    handler: 'static_response',
    headers: { 'Content-Type': [r.respond.content_type] },
    status_code: r.respond.status,
  };
}
