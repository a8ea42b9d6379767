// Caddy admin API client (a unix socket, or loopback TCP) and `caddy validate` for checking a config without
// touching the running one. Errors are typed: CaddyRejected (Caddy said no: 4xx, permanent for
// that document) vs CaddyUnavailable (no answer, 5xx or timeout: retry later).
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import axios, { type AxiosInstance, type AxiosResponse } from 'axios';
import { AppError } from '../errors.js';
import { parseAdminAddress } from './admin-address.js';

/** A loopback /load of 5,000 routes takes ~0.4 s; certificate loading can add seconds. Past this Caddy is stuck. */
export const LOAD_TIMEOUT_MS = 30_000;
/** GETs on loopback answer in ~1 ms (a 5,000-route /config/ in ~100 ms); longer means Caddy is wedged. */
export const READ_TIMEOUT_MS = 5_000;
/** Tries per call for transient failures: rides out a reload's brief ECONNRESET without hiding an outage. */
export const CLIENT_TRIES = 3;
/** First retry delay, doubled per try (100 ms, 200 ms): short, the reconciler has its own longer backoff. */
export const CLIENT_RETRY_BASE_MS = 100;
/** Largest config we send or read: 5,000 routes render to ~3 MB; this leaves room without being unbounded. */
export const MAX_CONFIG_BYTES = 64 * 1024 * 1024;
/** `caddy validate` provisions a 5,000-route config in well under 1 s; a hung run must not hold the push loop. */
export const VALIDATE_TIMEOUT_MS = 10_000;
/** Exactly this request URI (no query) is the one admin request Caddy 2.6.2 logs below INFO. */
const METRICS_PATH = '/metrics';

/** Caddy's admin path for its default internal CA (the one `tls internal` issues from). */
const LOCAL_CA_PATH = '/pki/ca/local';

/** What Caddy's admin API says of its internal CA (`/pki/ca/<id>`): public certificates only, PEM. */
export interface LocalCaInfo {
  id: string;
  name: string;
  root_common_name: string;
  intermediate_common_name: string;
  root_certificate: string;
  intermediate_certificate: string;
}

/** Caddy refused the request (4xx); `caddyError` is Caddy's own text, e.g. `... parse "%zz": invalid URL escape "%zz"`. */
export class CaddyRejected extends AppError {
  constructor(
    readonly caddyStatus: number,
    readonly caddyError: string,
  ) {
    super('proxy_rejected', `Caddy rejected the config (${caddyStatus}): ${caddyError}`);
    this.name = 'CaddyRejected';
  }
}

/** Caddy did not answer usefully (connection refused/reset, timeout, 5xx); the same call may succeed later. */
export class CaddyUnavailable extends AppError {
  constructor(
    readonly detail: string,
    readonly caddyStatus: number | null = null,
  ) {
    super('unavailable', `Caddy admin API unavailable: ${detail}`);
    this.name = 'CaddyUnavailable';
  }
}

/** What the reconciler needs from Caddy; CaddyAdmin implements it, unit tests pass a fake. */
export interface CaddyApi {
  /**
   * Replaces the whole running config; on CaddyRejected the old config keeps running. Idempotent. `json` is `JSON.stringify(config)` when the caller has it.
   * `force`: reload even if Caddy already runs this config (Caddy 2.6.2 skips an unchanged one unless `Cache-Control: must-revalidate`, admin.go).
   */
  load(config: Record<string, unknown>, json?: string, force?: boolean): Promise<void>;
  /** The string at a `/config/...` path, or null when absent/not a string. */
  getMarker(path: string): Promise<string | null>;
  /** The whole running config (GET /config/), null when Caddy runs an empty one. */
  config(): Promise<unknown>;
  /**
   * A token that changes whenever the running config may have changed (Caddy restarted, or an
   * admin request that can change the config was served), read without leaving a line in Caddy's
   * log; null when Caddy does not tell (then only the marker can say).
   */
  revision(): Promise<string | null>;
}

export interface CaddyPing {
  up: boolean;
  /** From `go_build_info` on admin /metrics; the Debian 2.6.2 build leaves it empty, so usually undefined. */
  version?: string;
  /** Never set: Caddy 2.6's admin API does not expose its PID (learn it from the supervisor). */
  pid?: number;
  /** Process start time (ms since epoch) from admin /metrics: changes when Caddy restarts. */
  startedAt?: number;
}

/**
 * Node's http.request over the admin unix socket with an empty Host header. Caddy 2.6.2 allows
 * only that Host on a unix-socket admin endpoint (admin.go allowedOrigins: `""` for unix
 * listeners; `host not allowed: localhost` otherwise, measured), and Node sets `Host: localhost`
 * itself unless told not to (setHost: false). An empty Host is also what Caddy's own CLI sends.
 */
const emptyHostTransport = {
  request: (options: http.RequestOptions, callback: (res: http.IncomingMessage) => void) => http.request({ ...options, setHost: false, headers: { ...options.headers, Host: '' } }, callback),
};

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Caddy's `{"error": "..."}` body as text, else the raw body. */
function caddyErrorText(body: unknown): string {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  try {
    const parsed = JSON.parse(text) as { error?: unknown };
    if (typeof parsed.error === 'string') return parsed.error;
  } catch {
    // not JSON
  }
  return text.trim() || '(empty answer)';
}

export class CaddyAdmin implements CaddyApi {
  readonly address: string;
  private readonly http: AxiosInstance;
  private readonly loadTimeoutMs: number;
  private readonly readTimeoutMs: number;

  /** `admin`: `unix/<path>` or the loopback `host:port` Caddy's admin API listens on. Throws for anything else. */
  constructor(admin: string, opts: { loadTimeoutMs?: number; readTimeoutMs?: number } = {}) {
    const where = parseAdminAddress(admin);
    this.address = admin;
    this.loadTimeoutMs = opts.loadTimeoutMs ?? LOAD_TIMEOUT_MS;
    this.readTimeoutMs = opts.readTimeoutMs ?? READ_TIMEOUT_MS;
    this.http = axios.create({
      // Over TCP the Host header axios derives from baseURL (`127.0.0.1:2019`) is one Caddy's
      // origin check accepts: its own listen address. Over the socket it must be empty (above).
      ...(where.kind === 'unix' ? { baseURL: 'http://localhost', socketPath: where.path, transport: emptyHostTransport } : { baseURL: `http://${admin}` }),
      // Never go through an HTTP(S)_PROXY from the environment.
      proxy: false,
      // No keep-alive: after a Caddy restart a pooled socket would only fail once more.
      httpAgent: new http.Agent({ keepAlive: false }),
      maxBodyLength: MAX_CONFIG_BYTES,
      maxContentLength: MAX_CONFIG_BYTES,
      responseType: 'text',
      transformResponse: [(d: unknown) => d],
      validateStatus: () => true,
      // No redirect following: axios then writes the body straight to node:http instead of
      // buffering it in follow-redirects (~9 ms per 1,000 routes measured).
      maxRedirects: 0,
    });
  }

  /** POST /load: replaces the running config. CaddyRejected on 4xx (old config still running). `json`, when given, is `JSON.stringify(config)`. */
  async load(config: Record<string, unknown>, json: string = JSON.stringify(config), force = false): Promise<void> {
    // The body is serialised already: axios's default transform would JSON.parse it again to check it (~5 ms at 1,000 routes).
    const asIs = [(data: string) => data];
    const headers = { 'content-type': 'application/json', ...(force ? { 'cache-control': 'must-revalidate' } : {}) };
    await this.call('POST /load', () => this.http.post('/load', json, { headers, timeout: this.loadTimeoutMs, transformRequest: asIs }));
  }

  /** 404 and 400 are null: Caddy answers 400 "invalid traversal path" when a parent key is missing. */
  async getMarker(path: string): Promise<string | null> {
    const res = await this.call(`GET ${path}`, () => this.http.get(path, { timeout: this.readTimeoutMs }), { nullOn: [400, 404] });
    if (res === null) return null;
    const value = parseJson(res.data);
    return typeof value === 'string' && value !== '' ? value : null;
  }

  /** 2.6.2's upstream pool (`GET /reverse_proxy/upstreams`, backend-health.ts parseUpstreams). Caddy logs this request at INFO: read when a view asks, and by the recovery watcher every 5 s (recovery.ts), nowhere else. */
  async upstreams(): Promise<unknown> {
    const res = await this.call('GET /reverse_proxy/upstreams', () => this.http.get('/reverse_proxy/upstreams', { timeout: this.readTimeoutMs }));
    return res === null ? null : parseJson(res.data);
  }

  async config(): Promise<unknown> {
    const res = await this.call('GET /config/', () => this.http.get('/config/', { timeout: this.readTimeoutMs }));
    return res === null ? null : parseJson(res.data);
  }

  /**
   * From admin `/metrics`: `process_start_time_seconds` and the number of admin requests other
   * than GET/HEAD/OPTIONS (`revisionOf`). Caddy 2.6.2 logs every admin request at INFO, with
   * its headers, except a request for exactly `/metrics`, which it logs at DEBUG (admin.go
   * adminHandler.ServeHTTP): this check leaves no line in Caddy's log at its default level.
   * null when /metrics answers 404 or lacks the start time.
   */
  async revision(): Promise<string | null> {
    // identity: Caddy's metrics handler gzips for any client that accepts it (axios does by default), the bulk of the cost.
    const get = () => this.http.get(METRICS_PATH, { timeout: this.readTimeoutMs, headers: { 'accept-encoding': 'identity' } });
    const res = await this.call(`GET ${METRICS_PATH}`, get, { nullOn: [404] });
    return res === null ? null : revisionOf(String(res.data));
  }

  /**
   * Caddy's internal CA (`tls internal`): GET /pki/ca/local (caddypki/adminapi.go in 2.6.2). When
   * no config has run the pki app yet, Caddy provisions the default CA for this request, making
   * and storing its root once: the root a later `tls internal` route is issued under.
   */
  async localCa(): Promise<LocalCaInfo> {
    const res = await this.call(`GET ${LOCAL_CA_PATH}`, () => this.http.get(LOCAL_CA_PATH, { timeout: this.readTimeoutMs }));
    const info = parseJson(res?.data) as Partial<Record<keyof LocalCaInfo, unknown>> | null;
    const text = (k: keyof LocalCaInfo): string => {
      const v = info?.[k];
      return typeof v === 'string' ? v : '';
    };
    if (!text('root_certificate').includes('-----BEGIN CERTIFICATE-----')) throw new CaddyUnavailable(`GET ${LOCAL_CA_PATH}: no root certificate in the answer`);
    return {
      id: text('id'),
      name: text('name'),
      root_common_name: text('root_common_name'),
      intermediate_common_name: text('intermediate_common_name'),
      root_certificate: text('root_certificate'),
      intermediate_certificate: text('intermediate_certificate'),
    };
  }

  /** One try, never throws. Caddy 2.6 has no version/PID endpoint; /metrics gives build info and start time. */
  async ping(): Promise<CaddyPing> {
    try {
      const res = await this.http.get(METRICS_PATH, { timeout: this.readTimeoutMs });
      if (res.status >= 500) return { up: false };
      if (res.status !== 200) return { up: (await this.http.get('/config/', { timeout: this.readTimeoutMs })).status === 200 };
      const text = String(res.data);
      const version = /^go_build_info\{[^}]*\bversion="([^"]+)"/m.exec(text)?.[1];
      const start = Number(/^process_start_time_seconds ([0-9.e+]+)$/m.exec(text)?.[1]);
      return { up: true, ...(version ? { version } : {}), ...(start > 0 ? { startedAt: Math.round(start * 1000) } : {}) };
    } catch {
      return { up: false };
    }
  }

  /**
   * Runs `send` up to CLIENT_TRIES times, retrying only when Caddy did not answer or answered
   * 5xx; a 4xx is final (CaddyRejected) unless listed in `nullOn`, which resolves to null.
   */
  private async call(what: string, send: () => Promise<AxiosResponse>, opts: { nullOn?: number[] } = {}): Promise<AxiosResponse | null> {
    let last: CaddyUnavailable | undefined;
    for (let attempt = 0; attempt < CLIENT_TRIES; attempt++) {
      if (attempt > 0) await sleep(CLIENT_RETRY_BASE_MS * 2 ** (attempt - 1));
      let res: AxiosResponse;
      try {
        res = await send();
      } catch (err) {
        const e = err as { code?: string; message?: string };
        last = new CaddyUnavailable(`${what}: ${e.code ?? e.message ?? String(err)}`);
        continue;
      }
      if (res.status >= 200 && res.status < 300) return res;
      if (opts.nullOn?.includes(res.status)) return null;
      if (res.status >= 400 && res.status < 500) throw new CaddyRejected(res.status, caddyErrorText(res.data));
      last = new CaddyUnavailable(`${what}: ${res.status} ${caddyErrorText(res.data)}`, res.status);
    }
    throw last!;
  }
}

/** Admin methods that never change the config: every other one (POST/PUT/PATCH/DELETE) may. */
const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * `<process start>/<admin requests that may change the config>` from Caddy's admin /metrics
 * text, or null without `process_start_time_seconds`. Caddy 2.6.2 counts every admin request in
 * `caddy_admin_http_requests_total{code,handler,method,path}` once its handler returned (so a
 * change is in the config before it is in the count), and a restart resets the counts and moves
 * the start time (1/100 s resolution). A POST /adapt or a refused load also counts: that only
 * costs one marker read.
 */
export function revisionOf(metrics: string): string | null {
  const start = /^process_start_time_seconds (\S+)$/m.exec(metrics)?.[1];
  if (start === undefined) return null;
  let changes = 0;
  for (const m of metrics.matchAll(/^caddy_admin_http_requests_total\{([^}]*)\} (\S+)$/gm)) {
    const method = /(?:^|,)method="([^"]*)"/.exec(m[1]!)?.[1] ?? '';
    if (!READ_METHODS.has(method)) changes += Number(m[2]);
  }
  return `${start}/${changes}`;
}

function parseJson(data: unknown): unknown {
  if (typeof data !== 'string' || data.trim() === '') return null;
  try {
    return JSON.parse(data) as unknown;
  } catch {
    return null;
  }
}

/** `caddy validate` could not run (binary missing, timeout): not a verdict on the config. */
export class ValidatorUnavailable extends Error {
  override name = 'ValidatorUnavailable';
}

/**
 * `caddy validate --config <tmpfile> --adapter ''`: loads and provisions every module without
 * starting servers (no sockets are bound; ~10–40 ms for a small config). Resolves with Caddy's
 * error text, or null when the config is valid. Throws ValidatorUnavailable when it cannot run.
 * `env` lets callers point Caddy's storage (HOME, XDG_DATA_HOME) somewhere; default: inherited.
 */
export async function validateWithCaddy(
  config: Record<string, unknown>,
  opts: { bin?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<string | null> {
  const dir = await mkdtemp(join(tmpdir(), 'dnsproxy-validate-'));
  try {
    const file = join(dir, 'config.json');
    await writeFile(file, JSON.stringify(config), { mode: 0o600 });
    return await new Promise<string | null>((resolve, reject) => {
      execFile(
        opts.bin ?? 'caddy',
        ['validate', '--config', file, '--adapter', ''],
        { env: opts.env ?? process.env, timeout: VALIDATE_TIMEOUT_MS, maxBuffer: 4 * 1024 * 1024 },
        (err, _stdout, stderr) => {
          if (!err) return resolve(null);
          const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: unknown };
          if (e.code === 'ENOENT') return reject(new ValidatorUnavailable(`caddy binary not found: ${opts.bin ?? 'caddy'}`));
          if (e.killed) return reject(new ValidatorUnavailable(`caddy validate timed out after ${VALIDATE_TIMEOUT_MS} ms`));
          // The verdict is the last "Error: ..." line; the lines before it are Caddy's JSON logs.
          const lines = String(stderr).trim().split('\n');
          const verdict = [...lines].reverse().find((l) => l.startsWith('Error: '));
          resolve(verdict ? verdict.slice('Error: '.length) : lines.slice(-3).join('\n') || `caddy validate failed: ${e.message}`);
        },
      );
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
