// A route's option groups (auth, headers, …; src/model/route-*.ts) as Caddy handlers: some run
// before its reverse_proxy, some change the reverse_proxy itself. render.ts calls routeHandlers()
// at one place; each group renders in its own module.
import { authHandlers, sortedKeys, withoutCredentials } from './auth.js';
import { withHeaders } from './headers.js';
import { limitHandlers, withLimits } from './limits.js';
import type { DesiredRoute } from './types.js';

type Json = Record<string, unknown>;

/** The route's handlers: its option groups' handlers, then `proxy` (its reverse_proxy, shared and never mutated) as the groups change it. */
export function routeHandlers(r: DesiredRoute, proxy: Json): Json[] {
  let p = proxy;
  p = withHeaders(p, r.headers);
  const creds = withoutCredentials(p, r.auth, r.headers);
  p = creds.proxy;
  p = withLimits(p, r.limits);
  // Auth first: a refused request never takes a slot or sends its body.
  return [...authHandlers(r.auth), ...creds.before, ...limitHandlers([p === proxy ? proxy : sortedKeys(p)], r.limits).map((h) => (h === proxy ? h : sortedKeys(h)))];
}
