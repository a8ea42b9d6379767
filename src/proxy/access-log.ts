// Caddy's access log → HostStats: the config that makes Caddy 2.6.2 send it (a `net` log writer
// to a loopback port) and the controller's listener there. src/proxy/README.md, "Per-host stats".
import net from 'node:net';
import type { Logger } from 'winston';
import { ID_PREFIX } from './types.js';
import type { HostStats } from './stats.js';

/** Name of our log in `logging.logs` and the servers' access logger (`http.log.access.<name>`). */
export const ACCESS_LOG_NAME = `${ID_PREFIX}stats`;
export const ACCESS_LOGGER = `http.log.access.${ACCESS_LOG_NAME}`;
/** Caddy dials the writer when a config is loaded; our listener answers at once on loopback. */
export const ACCESS_DIAL_TIMEOUT = '2s';
/** Longer lines are dropped whole (an access line with the fields deleted below is ~300 bytes). */
export const MAX_LINE_BYTES = 16 * 1024;
/** Caddy holds one connection per writer; more than a few means something else is connecting. */
const MAX_CONNECTIONS = 4;

/**
 * Fields removed by Caddy before a line is sent (its `filter` encoder, `delete`): the client's
 * address and port, every header, the URI (it holds the query string), the TLS details. What
 * is left: time, logger, msg, request.{host,method,proto}, status, size, duration, bytes_read, user_id.
 */
export const DELETED_FIELDS = ['request>remote_ip', 'request>remote_port', 'request>headers', 'request>uri', 'request>tls', 'resp_headers', 'user_id'] as const;

type Json = Record<string, unknown>;

/** The top-level `logging` of a config sending the access log to `address` (`tcp/127.0.0.1:<port>`). */
export function accessLogging(address: string): Json {
  return {
    logs: {
      // Caddy's default log would print every access line to stderr too.
      default: { exclude: [ACCESS_LOGGER] },
      [ACCESS_LOG_NAME]: {
        encoder: { fields: Object.fromEntries(DELETED_FIELDS.map((f) => [f, { filter: 'delete' }])), format: 'filter', wrap: { format: 'json' } },
        include: [ACCESS_LOGGER],
        writer: { address, dial_timeout: ACCESS_DIAL_TIMEOUT, output: 'net' },
      },
    },
  };
}

/** A server's `logs`: every request it handles is logged under ACCESS_LOGGER (all hosts, all routes). */
export function serverLogs(): Json {
  return { default_logger_name: ACCESS_LOG_NAME };
}

export interface AccessLogServer {
  /** `tcp/127.0.0.1:<port>`: the writer address rendered into Caddy's config. */
  address: string;
  port: number;
  /** Bytes and lines received (lines over MAX_LINE_BYTES are counted in `dropped`). */
  counts: { connections: number; lines: number; dropped: number };
  close(): Promise<void>;
}

/**
 * Listens on 127.0.0.1:`port` (0: a free port) for Caddy's net log writer and feeds each line to
 * `stats`. Only loopback peers; at most MAX_CONNECTIONS at once; no reply is ever written.
 */
export async function startAccessLogServer(opts: { port: number; stats: HostStats; log?: Logger }): Promise<AccessLogServer> {
  const counts = { connections: 0, lines: 0, dropped: 0 };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    if (sockets.size >= MAX_CONNECTIONS || !isLoopback(sock.remoteAddress)) {
      sock.destroy();
      return;
    }
    sockets.add(sock);
    counts.connections++;
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    let pending = '';
    let skipping = false;
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      let start = 0;
      for (let nl = chunk.indexOf('\n'); nl !== -1; nl = chunk.indexOf('\n', start)) {
        const line = pending + chunk.slice(start, nl);
        pending = '';
        start = nl + 1;
        if (skipping || line.length > MAX_LINE_BYTES) {
          skipping = false;
          counts.dropped++;
          continue;
        }
        counts.lines++;
        opts.stats.ingest(line);
      }
      if (!skipping) pending += chunk.slice(start);
      if (pending.length > MAX_LINE_BYTES) {
        pending = '';
        skipping = true;
      }
    });
  });
  server.maxConnections = MAX_CONNECTIONS;
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(opts.port, '127.0.0.1', () => resolve()));
  server.on('error', (e) => opts.log?.warn('access log listener error', { error: e.message }));
  const { port } = server.address() as net.AddressInfo;
  return {
    address: `tcp/127.0.0.1:${port}`,
    port,
    counts,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function isLoopback(addr: string | undefined): boolean {
  return addr !== undefined && (addr.startsWith('127.') || addr === '::1' || addr.startsWith('::ffff:127.'));
}
