// A route's extra listener (issue 15 item 8): the route is also served on this port, by its own
// Caddy server, plain HTTP for a `tls: off` route and TLS for the others.
import { z } from 'zod';

export const listenGroup = z
  .object({
    port: z.number().int().min(1, 'must be a port from 1 to 65535').max(65535, 'must be a port from 1 to 65535').describe('An extra port the route is served on (HTTP for tls off, else TLS), on listen_ip'),
  })
  .strict()
  .describe("An extra port for this route; routes sharing a port share one Caddy server, so they must agree on TLS (409 otherwise). Not one of this node's own ports (400).");
export type RouteListen = z.infer<typeof listenGroup>;

/** The protocol a route serves on its extra port: its own TLS mode decides. */
export const listenProtocol = (tls: string): 'http' | 'https' => (tls === 'off' ? 'http' : 'https');
