// The API address the CLI asks when neither --api-url nor DNSPROXY_API_URL is given: the one
// `dnsproxy serve` listens on under the same environment (DNSPROXY_LISTEN_IP, DNSPROXY_API_PORT),
// so `docker exec … dnsproxy status` reaches the controller whatever those two say.

import { networkInterfaces } from 'node:os';
import { detectTailnetIp } from '../config/load.js';

/** `dnsproxy serve`'s defaults (src/config): loopback, port 8080. */
const DEFAULT_HOST = '127.0.0.1';
const DEFAULT_PORT = '8080';

/** An address to connect to for a listen address: a wildcard means this host, reached over loopback; `tailnet` this node's Tailscale address. */
function connectHost(listenIp: string, ifaces: () => ReturnType<typeof networkInterfaces>): string {
  const ip = listenIp.trim() === 'tailnet' ? (detectTailnetIp(ifaces()) ?? DEFAULT_HOST) : listenIp.trim();
  if (!ip || ip === '0.0.0.0') return DEFAULT_HOST;
  if (ip === '::' || ip === '[::]') return '[::1]';
  if (ip.includes(':') && !ip.startsWith('[')) return `[${ip}]`;
  return ip;
}

/** DNSPROXY_API_URL when set, else http://<DNSPROXY_LISTEN_IP, wildcard → loopback>:<DNSPROXY_API_PORT>. */
export function defaultApiUrl(env: NodeJS.ProcessEnv, ifaces: () => ReturnType<typeof networkInterfaces> = networkInterfaces): string {
  if (env.DNSPROXY_API_URL) return env.DNSPROXY_API_URL;
  const port = env.DNSPROXY_API_PORT?.trim() || DEFAULT_PORT;
  return `http://${connectHost(env.DNSPROXY_LISTEN_IP ?? '', ifaces)}:${port}`;
}
