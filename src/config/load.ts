// Reads the layered config. Contract: returns a valid Config or throws ConfigError whose
// `lines` name every bad field and where its value came from.
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { createRequire } from 'node:module';
import type YAML from 'yaml';
import { defaultAdminAddress, adminAddressProblem } from '../proxy/admin-address.js';
import { CONFIG_KEYS, LIST_KEYS, configSchema, type Config } from './schema.js';

/** yaml is loaded when a YAML file is read (~5 MiB resident otherwise spent for nothing). */
const require = createRequire(import.meta.url);

export class ConfigError extends Error {
  constructor(readonly lines: string[]) {
    super(lines.join('\n'));
  }
}

type Layer = Record<string, unknown>;

export interface ConfigSources {
  /** Path of a JSON or YAML file (`--config` / DNSPROXY_CONFIG). */
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Values from CLI flags, already keyed by config name. */
  flags?: Layer;
  /** Interfaces, injectable for tests. */
  interfaces?: ReturnType<typeof networkInterfaces>;
}

function fromFile(path: string): Layer {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError([`config file ${path}: ${(e as Error).message}`]);
  }
  try {
    const parsed: unknown = path.endsWith('.json') ? JSON.parse(text) : (require('yaml') as typeof YAML).parse(text);
    if (parsed === null || parsed === undefined) return {};
    if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('top level must be a mapping');
    return parsed as Layer;
  } catch (e) {
    throw new ConfigError([`config file ${path}: ${(e as Error).message}`]);
  }
}

function fromEnv(env: NodeJS.ProcessEnv): Layer {
  const out: Layer = {};
  for (const key of CONFIG_KEYS) {
    const raw = env[`DNSPROXY_${key.toUpperCase()}`];
    if (raw === undefined || raw === '') continue;
    out[key] = LIST_KEYS.has(key) ? raw.split(',').map((s) => s.trim()).filter(Boolean) : raw;
  }
  // Singular form reads naturally for the common one-zone case.
  if (env.DNSPROXY_ZONE) out.zones = env.DNSPROXY_ZONE.split(',').map((s) => s.trim()).filter(Boolean);
  return out;
}

/** This node's Tailscale IPv4 address (100.64.0.0/10), or null. */
export function detectTailnetIp(ifaces: ReturnType<typeof networkInterfaces>): string | null {
  const v4 = Object.values(ifaces).flatMap((list) => list ?? []).filter((i) => i.family === 'IPv4' && !i.internal);
  const tailscale = v4.find((i) => {
    const [a, b] = i.address.split('.').map(Number);
    return a === 100 && b !== undefined && b >= 64 && b < 128;
  });
  return tailscale?.address ?? null;
}

/** Tailscale address (100.64.0.0/10) if any, else the first non-internal IPv4, else loopback. */
export function detectNodeIp(ifaces: ReturnType<typeof networkInterfaces>): string {
  const v4 = Object.values(ifaces).flatMap((list) => list ?? []).filter((i) => i.family === 'IPv4' && !i.internal);
  return detectTailnetIp(ifaces) ?? v4[0]?.address ?? '127.0.0.1';
}

/** Networks that may always use forwarding: loopback and Tailscale's ranges (100.64.0.0/10, fd7a:115c:a1e0::/48). */
export const RECURSION_ALWAYS = ['127.0.0.0/8', '::1/128', '100.64.0.0/10', 'fd7a:115c:a1e0::/48'] as const;

/**
 * Default `recursion_allow`: RECURSION_ALWAYS plus the networks of `listenIp` — the subnet of
 * the interface holding it (its address alone when no interface does), or for 0.0.0.0 / ::
 * the subnets of every interface. Link-local networks are left out.
 */
export function defaultRecursionAllow(listenIp: string, ifaces: ReturnType<typeof networkInterfaces>): string[] {
  const all = Object.values(ifaces).flatMap((list) => list ?? []);
  const any = listenIp === '0.0.0.0' || listenIp === '::';
  const own = all.filter((i) => (any ? !i.internal : i.address === listenIp) && i.cidr !== null && !/^fe[89ab]/i.test(i.address) && !i.address.startsWith('169.254.'));
  const nets = own.map((i) => i.cidr as string);
  if (!any && nets.length === 0) nets.push(`${listenIp}/${listenIp.includes(':') ? 128 : 32}`);
  return [...new Set([...RECURSION_ALWAYS, ...nets])];
}

export function loadConfig(src: ConfigSources = {}): Config {
  const env = src.env ?? process.env;
  const file = src.file ?? env.DNSPROXY_CONFIG;
  const layers: [string, Layer][] = [
    ['config file', file ? fromFile(file) : {}],
    ['env', fromEnv(env)],
    ['flag', src.flags ?? {}],
  ];
  const merged: Layer = {};
  const origin: Record<string, string> = {};
  for (const [name, layer] of layers)
    for (const [k, v] of Object.entries(layer))
      if (v !== undefined) {
        merged[k] = v;
        origin[k] = name === 'env' ? `env DNSPROXY_${k.toUpperCase()}` : name === 'flag' ? `--${k.replace(/_/g, '-')}` : `${name} ${file}`;
      }
  const parsed = configSchema.safeParse(merged);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => {
        const key = String(i.path[0] ?? '');
        const path = i.path.map(String).join('.') || '(top level)';
        return `config: ${path}: ${i.message}${origin[key] ? ` (from ${origin[key]})` : ''}`;
      }),
    );
  }
  // The admin socket's default follows the data dir. A data dir too deep for a socket path is
  // refused by `serve` (adminDefaultProblem), not here: the mail relay reads this config too.
  const caddyAdmin = parsed.data.caddy_admin ?? defaultAdminAddress(parsed.data.data_dir);
  const ifaces = src.interfaces ?? networkInterfaces();
  const tailnetIp = detectTailnetIp(ifaces);
  // `listen_ip: tailnet` binds the DNS server, the API, the relay and Caddy to the Tailscale address.
  if (parsed.data.listen_ip === 'tailnet' && tailnetIp === null)
    throw new ConfigError([`config: listen_ip: tailnet, but this node has no Tailscale address (100.64.0.0/10) yet; start tailscaled first or set an address${origin.listen_ip ? ` (from ${origin.listen_ip})` : ''}`]);
  const listenIp = parsed.data.listen_ip === 'tailnet' ? (tailnetIp as string) : parsed.data.listen_ip;
  return {
    ...parsed.data,
    listen_ip: listenIp,
    caddy_admin: caddyAdmin,
    node_ip: parsed.data.node_ip ?? detectNodeIp(ifaces),
    recursion_allow: parsed.data.recursion_allow ?? defaultRecursionAllow(listenIp, ifaces),
    tailnet_ip: tailnetIp,
  };
}

/** Why the (defaulted) caddy_admin cannot be used, as a config error line, or null. Set values were checked by the schema already. */
export function adminDefaultProblem(config: Config): string | null {
  const problem = adminAddressProblem(config.caddy_admin);
  return problem ? `config: caddy_admin: default ${config.caddy_admin}: ${problem}; set caddy_admin (--caddy-admin, DNSPROXY_CADDY_ADMIN) to a shorter unix/<path>` : null;
}
