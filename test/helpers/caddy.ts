// Test helpers for a real Caddy: a private `caddy run` (admin API on an owner-only unix socket,
// as in production, or on a free loopback port when asked) on free loopback ports, POST /load,
// `caddy adapt`, plain/TLS requests with a chosen Host header, and echo backends.
// Every Caddy started here lives in its own temp dir (HOME and XDG dirs point there), so tests
// never read or write the user's Caddy data; stop() kills the process and removes the dir.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ADMIN_SOCKET_NAME } from '../../src/proxy/admin-address.js';
import { caddyArgv } from '../../src/proxy/process.js';
import { tempDir } from './tmp.js';

export const CADDY_BIN = process.env.CADDY_BIN ?? 'caddy';
/** Caddy usually answers its admin API within ~100 ms; a loaded CI box may need seconds. */
const START_TIMEOUT_MS = 15_000;
/** After SIGTERM Caddy drains for up to its grace period; we do not wait longer than this. */
const STOP_TIMEOUT_MS = 5_000;
/** Kept output per process, so a failing test can print why Caddy was unhappy. */
const MAX_OUTPUT_CHARS = 64_000;

let caddyInstalled: boolean | undefined;
/** True when the `caddy` binary runs; integration tests call `this.skip()` otherwise. */
export function hasCaddy(): boolean {
  caddyInstalled ??= spawnSync(CADDY_BIN, ['version'], { stdio: 'ignore' }).status === 0;
  return caddyInstalled;
}

/** A loopback TCP port that was free a moment ago (bind port 0, read it, close). */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve, reject) => srv.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** `n` distinct free loopback ports. */
export async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

export interface RunningCaddy {
  /** `unix/<dir>/run/caddy-admin.sock` (default) or `127.0.0.1:<port>`: what a pushed config must carry as `admin.listen`. */
  adminListen: string;
  /** The admin socket's path, or null for a TCP admin. */
  adminSocket: string | null;
  /** One request to the admin API (empty Host over the socket, as Caddy 2.6.2 wants there), any status. */
  admin(method: string, path: string, body?: string, headers?: Record<string, string>): Promise<{ status: number; text: string }>;
  /** Free loopback ports reserved for the configs a test pushes (`:httpPort`, `:httpsPort`). */
  httpPort: number;
  httpsPort: number;
  /** PID of the current process (changes after restart()). */
  readonly pid: number;
  /** The temp dir holding the bootstrap config and Caddy's data (removed by stop()). */
  dir: string;
  /** stdout+stderr of the current process (last 64 kB). */
  output(): string;
  /** POST /load a JSON config; rejects with Caddy's answer on a non-2xx status. */
  load(config: unknown): Promise<void>;
  /** GET an admin path (e.g. `/config/`), parsed JSON; rejects on non-2xx. */
  get(path: string): Promise<unknown>;
  /** SIGTERM (SIGKILL after 5 s) and remove the temp dir. Safe to call more than once. */
  stop(): Promise<void>;
  /** SIGKILL, as a crash would; the temp dir stays so restart() can follow. */
  kill(): Promise<void>;
  /** Kill if running, then start again from the bootstrap config (empty apart from admin), as a supervisor would. */
  restart(): Promise<void>;
}

/** One HTTP request to an admin API at a unix socket (empty Host) or a loopback `host:port`. */
export function adminRequest(
  target: { socket: string } | { port: number },
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const where = 'socket' in target ? { socketPath: target.socket, setHost: false, headers: { Host: '', ...headers } } : { host: '127.0.0.1', port: target.port, headers };
    const req = http.request({ ...where, method, path, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    if (body !== undefined) req.setHeader('content-type', 'application/json');
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Starts `caddy run` with a bootstrap config holding only `admin` (persist off) and resolves once
 * `GET /config/` answers. The admin API listens on `<dir>/run/caddy-admin.sock` (directory 0700,
 * Caddy started with umask 077 by the production caddyArgv()), or with `admin: 'tcp'` on
 * 127.0.0.1:<free port>. The caller must call stop().
 */
export async function startCaddy(opts: { admin?: 'unix' | 'tcp' } = {}): Promise<RunningCaddy> {
  const tmp = tempDir('dnsproxy-caddy-');
  const [adminPort, httpPort, httpsPort] = (await freePorts(3)) as [number, number, number];
  const adminSocket = opts.admin === 'tcp' ? null : join(tmp.dir, 'run', ADMIN_SOCKET_NAME);
  if (adminSocket) mkdirSync(join(tmp.dir, 'run'), { mode: 0o700 });
  const adminListen = adminSocket ? `unix/${adminSocket}` : `127.0.0.1:${adminPort}`;
  const bootstrap = join(tmp.dir, 'bootstrap.json');
  writeFileSync(bootstrap, JSON.stringify({ admin: { listen: adminListen, config: { persist: false } } }));
  const env = { ...process.env, HOME: tmp.dir, XDG_DATA_HOME: join(tmp.dir, 'data'), XDG_CONFIG_HOME: join(tmp.dir, 'config') };

  let proc: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let out = '';
  let removed = false;
  const keep = (chunk: Buffer) => {
    out = (out + chunk.toString()).slice(-MAX_OUTPUT_CHARS);
  };

  const admin = (method: string, path: string, body?: string, headers?: Record<string, string>) =>
    adminRequest(adminSocket ? { socket: adminSocket } : { port: adminPort }, method, path, body, headers);

  const waitExit = async (signal: NodeJS.Signals, timeoutMs: number): Promise<void> => {
    const p = proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    p.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs)));
    const late = await Promise.race([exited.then(() => false), timedOut]);
    clearTimeout(timer);
    if (late) {
      p.kill('SIGKILL');
      await exited;
    }
  };

  const spawnOne = async (): Promise<void> => {
    out = '';
    const [cmd, args] = caddyArgv(CADDY_BIN, ['run', '--config', bootstrap]);
    const p = spawn(cmd, args, { env, cwd: tmp.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    proc = p;
    p.stdout.on('data', keep);
    p.stderr.on('data', keep);
    exited = new Promise((resolve) => p.once('exit', () => resolve()));
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (p.exitCode !== null || p.signalCode !== null) throw new Error(`caddy exited before answering:\n${out}`);
      try {
        if ((await admin('GET', '/config/')).status === 200) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await waitExit('SIGKILL', STOP_TIMEOUT_MS);
        throw new Error(`caddy admin API did not answer within ${START_TIMEOUT_MS} ms:\n${out}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  try {
    await spawnOne();
  } catch (err) {
    tmp.cleanup();
    throw err;
  }

  return {
    adminListen,
    adminSocket,
    admin,
    httpPort,
    httpsPort,
    dir: tmp.dir,
    get pid() {
      return proc?.pid ?? -1;
    },
    output: () => out,
    async load(config) {
      const res = await admin('POST', '/load', JSON.stringify(config));
      if (res.status < 200 || res.status > 299) throw new Error(`POST /load answered ${res.status}: ${res.text}`);
    },
    async get(path) {
      const res = await admin('GET', path);
      if (res.status < 200 || res.status > 299) throw new Error(`GET ${path} answered ${res.status}: ${res.text}`);
      return JSON.parse(res.text) as unknown;
    },
    async stop() {
      await waitExit('SIGTERM', STOP_TIMEOUT_MS);
      if (!removed) tmp.cleanup();
      removed = true;
    },
    async kill() {
      await waitExit('SIGKILL', STOP_TIMEOUT_MS);
    },
    async restart() {
      await waitExit('SIGKILL', STOP_TIMEOUT_MS);
      await spawnOne();
    },
  };
}

/** `caddy adapt` of a Caddyfile: the JSON config and the warning lines Caddy logged. */
export async function caddyAdapt(caddyfile: string): Promise<{ config: Record<string, unknown>; warnings: string[] }> {
  const tmp = tempDir('dnsproxy-adapt-');
  try {
    const file = join(tmp.dir, 'Caddyfile');
    writeFileSync(file, caddyfile);
    const env = { ...process.env, HOME: tmp.dir, XDG_DATA_HOME: tmp.dir, XDG_CONFIG_HOME: tmp.dir };
    const { stdout, stderr } = await promisify(execFile)(CADDY_BIN, ['adapt', '--config', file, '--adapter', 'caddyfile'], { env });
    const warnings = stderr.split('\n').filter((l) => /"level":"(warn|error)"|\bWARN\b|\bERROR\b/.test(l));
    return { config: JSON.parse(stdout) as Record<string, unknown>, warnings };
  } finally {
    tmp.cleanup();
  }
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * One GET to 127.0.0.1:`port` with the given Host header; over TLS when `tls` is set (SNI =
 * `servername`, certificate not verified). A fresh connection per request (no keep-alive).
 */
export function request(opts: { port: number; host: string; path?: string; tls?: { servername: string } }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const common = { host: '127.0.0.1', port: opts.port, path: opts.path ?? '/', headers: { host: opts.host }, agent: false as const };
    const onRes = (res: http.IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    };
    const req = opts.tls
      ? https.request({ ...common, servername: opts.tls.servername, rejectUnauthorized: false }, onRes)
      : http.request(common, onRes);
    req.setTimeout(10_000, () => req.destroy(new Error(`request to ${opts.host}${opts.path ?? '/'} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** What an echo backend answers: its name and the request as it arrived. */
export interface Echo {
  backend: string;
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

export interface Backend {
  name: string;
  /** `127.0.0.1:<port>`, usable as an upstream dial address. */
  dial: string;
  port: number;
  /** Requests received so far. */
  hits: number;
  /** TCP connections accepted so far (keep-alive reuse shows as fewer connections than hits). */
  connections: number;
  close(): Promise<void>;
}

/** An HTTP server on 127.0.0.1:`port` (0: a free one) answering every request with a JSON `Echo`. */
export async function startBackend(name: string, port = 0): Promise<Backend> {
  const server = http.createServer((req, res) => {
    backend.hits++;
    const echo: Echo = { backend: name, method: req.method ?? '', url: req.url ?? '', headers: req.headers };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(echo));
  });
  server.on('connection', () => backend.connections++);
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve));
  const bound = (server.address() as net.AddressInfo).port;
  const backend: Backend = {
    name,
    port: bound,
    dial: `127.0.0.1:${bound}`,
    hits: 0,
    connections: 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return backend;
}

/** `0100007F:1F90` (a /proc/net/tcp address, little-endian words) → `127.0.0.1:8080` / `[::1]:8080`. */
function procAddress(hex: string): string {
  const [ip, port] = hex.split(':') as [string, string];
  const words = ip.match(/.{8}/g)!.map((w) => w.match(/../g)!.reverse().join(''));
  const p = parseInt(port, 16);
  if (words.length === 1) return `${words[0]!.match(/../g)!.map((b) => parseInt(b, 16)).join('.')}:${p}`;
  const v4mapped = words.slice(0, 2).join('') === '0'.repeat(16) && words[2] === '0000ffff';
  if (v4mapped) return `[::ffff:${words[3]!.match(/../g)!.map((b) => parseInt(b, 16)).join('.')}]:${p}`;
  const groups = words.join('').match(/.{4}/g)!.map((g) => parseInt(g, 16).toString(16));
  return `[${groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::').replace(/:::+/, '::')}]:${p}`;
}

/**
 * The TCP addresses process `pid` listens on, sorted (Linux: its socket fds matched against
 * /proc/net/tcp and tcp6 in LISTEN state). Shows what Caddy really bound, whatever its config says.
 */
export function tcpListeners(pid: number): string[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const out: string[] = [];
  for (const table of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // local_address is field 1, st field 3 (0A = LISTEN), inode field 9.
      if (f[3] === '0A' && inodes.has(f[9]!)) out.push(procAddress(f[1]!));
    }
  }
  return out.sort();
}

/**
 * One GET / through Caddy with a Host header: the name of the echo backend (startBackend) that
 * answered, or `status <code>` when the answer is not an echo. `agent` false: a fresh connection.
 */
export function backendBehind(port: number, host: string, agent: http.Agent | false = false): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/', headers: { host }, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        try {
          resolve((JSON.parse(body) as Echo).backend);
        } catch {
          resolve(`status ${res.statusCode}`);
        }
      });
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`request to ${host} timed out`)));
    req.on('error', reject);
    req.end();
  });
}
