// The endpoints no route may reach, as the API checks and render() enforces them: the controller's
// ownEndpoints(config) plus what the proxy settings themselves name. The check is
// routeOwnProblem() / upstreamOwnProblem() / routeHostProblem() in src/model/endpoints.ts.
import { adminTcpPort, mergeEndpoints, type OwnEndpoints } from '../model/endpoints.js';
import type { ProxySettings } from './types.js';

/** Per settings object (the controller's lives for the process): built once, not per render. */
const cache = new WeakMap<ProxySettings, OwnEndpoints>();

/** settings.own plus the admin TCP port (if any), Caddy's HTTP and HTTPS ports and listenIp. */
export function endpointsOf(settings: ProxySettings): OwnEndpoints {
  let known = cache.get(settings);
  if (known) return known;
  const admin = adminTcpPort(settings.admin);
  const mine: OwnEndpoints = {
    hosts: [settings.listenIp.toLowerCase()],
    ports: [
      ...(admin ? [{ port: admin, what: 'Caddy admin API (caddy_admin)' }] : []),
      { port: settings.httpPort, what: 'Caddy HTTP port (http_port)' },
      { port: settings.httpsPort, what: 'Caddy HTTPS port (https_port)' },
    ].filter((p) => p.port > 0),
  };
  known = mergeEndpoints(settings.own ?? { hosts: [], ports: [] }, mine);
  cache.set(settings, known);
  return known;
}
