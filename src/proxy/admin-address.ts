// Where Caddy's admin API listens (`caddy_admin`): a unix socket by default, a loopback TCP
// address only when configured so. Pure (no I/O); shared by the config schema, the admin client,
// the Caddy we spawn and the Caddyfile export, so they all accept and refuse the same values.
import { isIPv4 } from 'node:net';
import { resolve } from 'node:path';

/** The socket's file name in `<data_dir>/run/` (the default) or in supervisord's run dir. */
export const ADMIN_SOCKET_NAME = 'caddy-admin.sock';
/** Linux's sun_path holds 108 bytes including the final NUL; a longer path cannot be bound. */
export const MAX_SOCKET_PATH_BYTES = 107;

export type AdminAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

// Letters, digits and . _ - + @ , = / only: nothing Caddy reads as a placeholder (`{…}`), a file
// mode (`|0600`, Caddy ≥ 2.7), a port (`:`) or that needs quoting in JSON, a Caddyfile or sh.
const SOCKET_PATH = /^\/[A-Za-z0-9._+@,=/-]*$/;

/** Why `admin` is not a usable admin address, or null. */
export function adminAddressProblem(admin: string): string | null {
  if (admin.startsWith('unix/')) {
    const path = admin.slice('unix/'.length);
    if (!path.startsWith('/')) return `unix socket path must be absolute (unix//run/caddy-admin.sock), got "${path}"`;
    if (!SOCKET_PATH.test(path)) return 'unix socket path may hold only letters, digits and . _ - + @ , = /';
    if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) return `unix socket path is longer than ${MAX_SOCKET_PATH_BYTES} bytes (the kernel's limit)`;
    return null;
  }
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(admin);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  const loopback = host === 'localhost' || host === '::1' || (host !== undefined && isIPv4(host) && host.startsWith('127.'));
  if (!m || !loopback || !(port >= 1 && port <= 65535))
    return `must be unix/<absolute path> or a loopback host:port (127.0.0.0/8, [::1] or localhost), got "${admin}": anything else puts Caddy's admin API on the network`;
  return null;
}

/** `unix/<path>` or a loopback `host:port`; throws with adminAddressProblem()'s text otherwise. */
export function parseAdminAddress(admin: string): AdminAddress {
  const problem = adminAddressProblem(admin);
  if (problem) throw new Error(`Caddy admin address ${problem}`);
  if (admin.startsWith('unix/')) return { kind: 'unix', path: admin.slice('unix/'.length) };
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(admin)!;
  return { kind: 'tcp', host: (m[1] ?? m[2])!, port: Number(m[3]) };
}

/** The default: `unix/<data_dir>/run/caddy-admin.sock`, the data dir made absolute. */
export function defaultAdminAddress(dataDir: string): string {
  return `unix/${resolve(dataDir, 'run', ADMIN_SOCKET_NAME)}`;
}
