// Checks of a route's extra port (src/model/route-listen.ts) at the API: 400 naming `listen.port`
// for one of this node's own ports, 409 when another route holds the port with the other protocol.
import { AppError } from '../errors.js';
import { listenProtocol, type RouteListen } from '../model/route-listen.js';
import { ownPortProblem } from '../proxy/listen.js';
import type { ApiDeps } from './app.js';

export function assertListen(deps: Pick<ApiDeps, 'proxy' | 'routes'>, id: string, body: { tls: string; listen?: RouteListen | undefined }, at = ''): void {
  if (!body.listen) return;
  const { port } = body.listen;
  const own = ownPortProblem(port, deps.proxy.settings);
  if (own) throw new AppError('invalid_body', undefined, [{ path: `${at}listen.port`, message: `${own}; choose another port` }]);
  const want = listenProtocol(body.tls);
  for (const other of deps.routes.scan().routes)
    if (other.id !== id && other.listen?.port === port && listenProtocol(other.tls) !== want)
      throw new AppError('conflict', `port ${port} is served with ${listenProtocol(other.tls)} by route ${other.id} (tls ${other.tls}); this route (tls ${body.tls}) would need ${want}: one port is either HTTP or TLS`);
}
