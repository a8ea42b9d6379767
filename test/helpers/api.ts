// An API instance on a temp database, for inject() tests.
import type { FastifyInstance } from 'fastify';
import { build } from '../../src/api/app.js';
import { rollUp, type HealthReport } from '../../src/api/health.js';
import { ZoneIndex } from '../../src/dns/index.js';
import { openDb, type Db } from '../../src/store/db.js';
import { backupInto } from '../../src/store/backup.js';
import { RecordStore } from '../../src/store/records.js';
import { TokenStore } from '../../src/store/tokens.js';
import { RouteStore } from '../../src/store/routes.js';
import { simulate, transact } from '../../src/store/simulate.js';
import { ProxyState } from '../../src/proxy/state.js';
import { zoneResolver } from '../../src/proxy/resolve.js';
import type { DesiredProxy } from '../../src/proxy/types.js';
import { setLogLevel } from '../../src/log/index.js';
import { mailWiring, type MailWiring } from '../../src/mail/wiring.js';
import { tempDir } from './tmp.js';
import { loadConfig } from '../../src/config/load.js';
import { ownEndpoints } from '../../src/model/endpoints.js';

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
  tokens: TokenStore;
  token: string;
  /** What the fake reconciler reports as applied; tests set it. */
  applied: { value: DesiredProxy | null };
  auth: { authorization: string };
  /** The controller's mail wiring: tick() runs the due mail jobs. */
  mail: MailWiring;
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
}

export async function apiFixture(opts: ApiFixtureOptions = {}): Promise<ApiFixture> {
  const tmp = tempDir();
  const db = openDb(tmp.dir);
  const records = new RecordStore(db, ZONES);
  const tokens = new TokenStore(db);
  const index = new ZoneIndex(ZONES.map((name) => ({ name, nameservers: [`ns1.${name}`], hostmaster: `hostmaster.${name}`, nodeIp: NODE_IP })));
  for (const zone of ZONES) index.load(zone, records.serial(zone), records.list({ zone }));
  records.onChange((c) => {
    index.apply(c);
    return index.settled();
  });
  const routes = new RouteStore(db);
  // Proxy settings from the config defaults, as the controller wires them, with Caddy's admin API
  // on loopback TCP (127.0.0.1:2019) so tests can show a route to it refused.
  const config = loadConfig({ env: { DNSPROXY_DATA_DIR: tmp.dir, DNSPROXY_NODE_IP: NODE_IP, DNSPROXY_CADDY_ADMIN: '127.0.0.1:2019' }, interfaces: {} });
  const settings = { httpPort: config.http_port, httpsPort: config.https_port, listenIp: config.listen_ip, admin: config.caddy_admin, own: ownEndpoints(config) };
  const proxy = new ProxyState(records, routes, zoneResolver(index), settings);
  const applied: { value: DesiredProxy | null } = { value: null };
  const { token } = tokens.create('test', 'admin');
  let mail: MailWiring | undefined;
  const app = await build({
    routes,
    proxy,
    proxyStatus: () => ({ applied: applied.value, caddyUp: true, inSync: applied.value !== null, lastError: null }),
    caddyfile: opts.caddyfile ?? ((d) => d.routes.map((r) => `${r.hosts.join(' ')} -> ${r.upstreams.join(' ')}`).join('\n')),
    simulate: (fn) => simulate(db, [records, routes], fn),
    transaction: (fn) => transact(db, [records, routes], fn),
    zones: ZONES,
    nodeIp: NODE_IP,
    ownAddresses: [NODE_IP, '127.0.0.1'],
    records,
    tokens,
    servedRecords: (z) => index.servedRecords(z),
    synthesisedRecords: (z) => index.synthesisedRecords(z),
    health: opts.health ?? (() => rollUp({ store: { status: 'ok' }, dns: { status: 'ok' }, proxy: { status: 'disabled' }, mail: { status: 'disabled' } })),
    version: 'test',
    mail: (mail = mailWiring({ db, records, config: { mail_hostname: MAIL_HOSTNAME, node_ip: NODE_IP, listen_ip: '127.0.0.1', api_key_requests_per_minute: opts.keyRequestsPerMinute ?? 100, mail_retention_days: opts.retentionDays ?? 30 }, dnsPort: () => opts.dnsPort?.() ?? 53, transaction: (fn) => transact(db, [records, routes], fn), timer: false, ...(opts.now ? { now: opts.now } : {}) })).deps,
    backup: () => backupInto(db, tmp.dir),
  });
  return {
    app,
    db,
    dir: tmp.dir,
    index,
    records,
    routes,
    proxy,
    tokens,
    token,
    applied,
    auth: { authorization: `Bearer ${token}` },
    mail: mail,
    close: async () => {
      mail.stop();
      await app.close();
      db.close();
      tmp.cleanup();
    },
  };
}
