// An API instance on a temp database, for inject() tests.
import type { HostStats } from '../../src/proxy/stats.js';
import type { ViewTable } from '../../src/dns/views.js';
import type { ViewStore } from '../../src/store/views.js';
import type { FastifyInstance } from 'fastify';
import { build, type ApiDeps } from '../../src/api/app.js';
import { wire, type WireDeps } from '../../src/controller.js';
import type { Config } from '../../src/config/schema.js';
import type { TailnetDeps } from '../../src/tailnet/index.js';
import type { PlainUpstreams } from '../../src/dns/index.js';
import type { ChangePipeline } from '../../src/proxy/pipeline.js';
import { rollUp, type HealthReport } from '../../src/api/health.js';
import type { ZoneIndex } from '../../src/dns/index.js';
import type { ProxyState } from '../../src/proxy/state.js';
import { openDb, type Db } from '../../src/store/db.js';
import type { GroupCommit } from '../../src/store/group.js';
import { backupInto } from '../../src/store/backup.js';
import type { RecordStore } from '../../src/store/records.js';
import type { RouteStore } from '../../src/store/routes.js';
import type { TokenStore } from '../../src/store/tokens.js';
import type { DesiredProxy } from '../../src/proxy/types.js';
import { setLogLevel } from '../../src/log/index.js';
import { mailWiring, type MailWiring } from '../../src/mail/wiring.js';
import { tempDir } from './tmp.js';
import type { CertificateStore } from '../../src/certs/store.js';
import { loadConfig } from '../../src/config/load.js';

// In-process tests assert on responses; request lines would only bury mocha's output.
setLogLevel('warn');

export const ZONES = ['home.arpa.', 'lab.example.'];
export const NODE_IP = '192.0.2.10';
/** The relay's host name in API tests: inside a test zone, so MX and MTA-STS name it there. */
export const MAIL_HOSTNAME = 'mail.lab.example';

export interface ApiFixture {
  app: FastifyInstance;
  db: Db;
  /** The data dir (the database and, for a moment, backups). */
  dir: string;
  /** The DNS index the records' changes are applied to (as the controller's). */
  index: ZoneIndex;
  records: RecordStore;
  routes: RouteStore;
  proxy: ProxyState;
  /** The DNS table of plain names the pipeline publishes. */
  plain: PlainUpstreams;
  pipeline: ChangePipeline;
  tokens: TokenStore;
  /** The split-horizon view table a DNS server would match clients against (kept in step with /api/v1/views). */
  viewTable: ViewTable;
  /** The split-horizon views' store (what /api/v1/views writes). */
  views: ViewStore;
  token: string;
  /** What the fake reconciler reports as applied; tests set it. */
  applied: { value: DesiredProxy | null };
  auth: { authorization: string };
  /** The controller's mail wiring: tick() runs the due mail jobs. */
  mail: MailWiring;
  /** Tailnet devices (not polling until the test polls or starts them). */
  devices: TailnetDeps;
  /** The API writes' group commit (its counts). */
  group: GroupCommit;
  /** The certificate store (src/certs) the API writes. */
  certificates: CertificateStore;
  close: () => Promise<void>;
}

export interface ApiFixtureOptions {
  health?: () => HealthReport;
  /** The Caddyfile export; default: one line per route (the real one is src/proxy/caddyfile.ts). */
  caddyfile?: (desired: DesiredProxy) => string;
  /** Our DNS server's port, for `mail domain check` (default 53: nothing listens in most tests). */
  dnsPort?: () => number;
  /** mail_retention_days (default 30, as the setting). */
  retentionDays?: number;
  /** Requests a minute per mail account API key (default 100, as the setting). */
  keyRequestsPerMinute?: number;
  /** The mail jobs' and key rate limit's clock (DKIM rotation). */
  now?: () => number;
  /** Serve plain names through DNS, Caddy asking this resolver address (default: every route explicit). */
  resolver?: string;
  /** How the pipeline defers its work (default setImmediate). */
  defer?: (fn: () => void) => void;
  /** Tailnet device source and poll timers (default: no source, so no device is known). */
  devices?: WireDeps['devices'];
  /** Settings over the test defaults (e.g. tailnet_only). */
  config?: Partial<Config>;
  /** The API writes' group commit: its flush's deferral and hooks (default setImmediate). */
  group?: WireDeps['group'];
  /** The certificate store's clock (default the system's). */
  certsNow?: () => Date;
  /** Per-host stats behind GET /api/v1/stats (default: none, the endpoints answer zeros). */
  stats?: HostStats;
  /** Caddy's upstream pool as the API reads it (backend health); default: none (no Caddy). */
  upstreamPool?: ApiDeps['upstreamPool'];
}

export async function apiFixture(opts: ApiFixtureOptions = {}): Promise<ApiFixture> {
  const tmp = tempDir();
  const db = openDb(tmp.dir);
  // Proxy settings from the config defaults, as the controller wires them, with Caddy's admin API
  // on loopback TCP (127.0.0.1:2019) so tests can show a route to it refused.
  const config = { ...loadConfig({ env: { DNSPROXY_DATA_DIR: tmp.dir, DNSPROXY_NODE_IP: NODE_IP, DNSPROXY_CADDY_ADMIN: '127.0.0.1:2019' }, interfaces: {} }), zones: ZONES, ...opts.config };
  // The controller's own wiring, without a reconciler: tests set what Caddy "runs" (applied).
  const w = wire(config, { db, caddy: null, devices: opts.devices ?? { source: null }, ...(opts.defer ? { defer: opts.defer } : {}), ...(opts.group ? { group: opts.group } : {}), ...(opts.certsNow ? { certsNow: opts.certsNow } : {}) });
  if (opts.resolver) w.proxy.useResolver(opts.resolver);
  w.pipeline.start();
  const applied: { value: DesiredProxy | null } = { value: null };
  const { token } = w.tokens.create('test', 'admin');
  let mail: MailWiring | undefined;
  const app = await build({
    ...w.api,
    ownAddresses: [NODE_IP, '127.0.0.1'],
    proxyStatus: () => ({ applied: applied.value, caddyUp: true, inSync: applied.value !== null, lastError: null }),
    caddyfile: opts.caddyfile ?? ((d) => d.routes.map((r) => `${r.hosts.join(' ')} -> ${r.upstreams.join(' ')}`).join('\n')),
    health: opts.health ?? (() => rollUp({ store: { status: 'ok' }, dns: { status: 'ok' }, proxy: { status: 'disabled' }, mail: { status: 'disabled' } })),
    version: 'test',
    mail: (mail = mailWiring({ db, records: w.records, config: { mail_hostname: MAIL_HOSTNAME, node_ip: NODE_IP, listen_ip: '127.0.0.1', api_key_requests_per_minute: opts.keyRequestsPerMinute ?? 100, mail_retention_days: opts.retentionDays ?? 30 }, dnsPort: () => opts.dnsPort?.() ?? 53, transaction: w.api.transaction, timer: false, ...(opts.now ? { now: opts.now } : {}) })).deps,
    backup: () => backupInto(db, tmp.dir),
    ...(opts.stats ? { stats: opts.stats } : {}),
    ...(opts.upstreamPool ? { upstreamPool: opts.upstreamPool } : {}),
  });
  return {
    app,
    db,
    dir: tmp.dir,
    index: w.index,
    records: w.records,
    routes: w.routes,
    proxy: w.proxy,
    plain: w.plain,
    pipeline: w.pipeline,
    tokens: w.tokens,
    viewTable: w.viewTable,
    views: w.views,
    token,
    applied,
    auth: { authorization: `Bearer ${token}` },
    mail: mail,
    devices: w.devices,
    group: w.group,
    certificates: w.certificates,
    close: async () => {
      mail.stop();
      await w.devices.registry.stop();
      await app.close();
      await w.pipeline.settled();
      w.uncount();
      db.close();
      tmp.cleanup();
    },
  };
}
