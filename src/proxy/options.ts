// A route's option groups (auth, …; src/model/route-*.ts) as the Caddy handlers that run before
// its reverse_proxy. render.ts calls optionHandlers() at one place; each group renders in its own
// module.
import { authHandlers } from './auth.js';
import type { DesiredRoute } from './types.js';

/** Handlers placed before the route's reverse_proxy, in order (keys sorted), or []. */
export function optionHandlers(r: DesiredRoute): Record<string, unknown>[] {
  return [...authHandlers(r.auth)];
}
