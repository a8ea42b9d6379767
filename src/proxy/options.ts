// A route's option groups (auth, headers, …; src/model/route-*.ts) as Caddy handlers: some run
// before its reverse_proxy, some change the reverse_proxy itself. render.ts calls routeHandlers()
// at one place; each group renders in its own module.
import { authHandlers, sortedKeys } from './auth.js';
import { withHeaders } from './headers.js';
import type { DesiredRoute } from './types.js';

type Json = Record<string, unknown>;

/** The route's handlers: its option groups' handlers, then `proxy` (its reverse_proxy, shared and never mutated) as the groups change it. */
export function routeHandlers(r: DesiredRoute, proxy: Json): Json[] {
  let p = proxy;
  p = withHeaders(p, r.headers);
  return [...authHandlers(r.auth), p === proxy ? proxy : sortedKeys(p)];
}
