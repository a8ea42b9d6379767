// The controller process: store + authoritative DNS + HTTP API, wired together.
// Contract: start() either brings every part up or stops what it started and throws;
// stop() is safe after a partial start and closes the API before DNS before the store.
import type { FastifyInstance } from 'fastify';
import { readFileSync } from 'node:fs';
import { build } from './api/app.js';
import { rollUp, type HealthReport } from './api/health.js';
import type { Config } from './config/schema.js';
import { DnsServer, ZoneIndex } from './dns/index.js';
import type { ZoneSettings } from './dns/soa.js';
import { logger } from './log/index.js';
import { recordsGauge } from './metrics.js';
import { openDb, type Db } from './store/db.js';
import { RecordStore } from './store/records.js';
import { TokenStore } from './store/tokens.js';
import { RouteStore } from './store/routes.js';
import { simulate } from './store/simulate.js';
import { ProxyState } from './proxy/state.js';
import { zoneResolver } from './proxy/resolve.js';

export const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export function zoneSettings(config: Config): ZoneSettings[] {
  return config.zones.map((name) => ({
    name,
    nameservers: config.nameservers.length ? config.nameservers : [`ns1.${name}`],
    hostmaster: `hostmaster.${name}`,
    nodeIp: config.node_ip,
  }));
}

export class Controller {
  private db?: Db;
  private dns?: DnsServer;
  private api?: FastifyInstance;
  private readonly log = logger('controller');

  constructor(
    private readonly config: Config,
    /** Where the generated first-start token is shown (once). */
    private readonly announce: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
  ) {}

  async start(): Promise<{ apiPort: number; dnsPort: number }> {
    const c = this.config;
    try {
      const db = (this.db = openDb(c.data_dir));
      const records = new RecordStore(db, c.zones);
      const tokens = new TokenStore(db);
      const generated = tokens.bootstrap(process.env.DNSPROXY_ADMIN_TOKEN || undefined);
      if (generated) {
        this.announce(`dnsproxy: first start: admin API token (shown once, stored hashed): ${generated}`);
        this.log.info('admin token generated and printed once');
      }

      const index = new ZoneIndex(zoneSettings(c));
      for (const zone of c.zones) index.load(zone, records.serial(zone), records.list({ zone }));
      const countRecords = () => {
        recordsGauge.reset();
        for (const zone of c.zones) recordsGauge.labels(zone).set(records.count(zone));
      };
      countRecords();
      records.onChange((change) => {
        index.apply(change);
        countRecords();
        this.log.info('records changed', {
          zone: change.zone,
          serial: change.serial,
          upserted: change.upserted.map((r) => `${r.name} ${r.type}`),
          removed: change.removed.map((r) => `${r.name} ${r.type}`),
        });
      });

      this.dns = new DnsServer({ host: c.listen_ip, port: c.dns_port, index, upstreams: c.upstreams, axfrAllow: c.axfr_allow });
      await this.dns.start();

      const dns = this.dns;
      const health = (): HealthReport => {
        let store: 'ok' | 'down' = 'ok';
        try {
          db.prepare('SELECT 1').get();
        } catch {
          store = 'down';
        }
        return rollUp({
          store: { status: store },
          dns: { status: dns.status() },
          proxy: { status: 'disabled', detail: 'Caddy reconciler not built yet' },
          mail: { status: 'disabled', detail: 'mail relay not built yet' },
        });
      };
      const routes = new RouteStore(db);
      const proxy = new ProxyState(records, routes, zoneResolver(index), { httpPort: c.http_port, httpsPort: c.https_port, admin: c.caddy_admin });
      this.api = await build({
        zones: c.zones,
        nodeIp: c.node_ip,
        records,
        routes,
        proxy,
        tokens,
        servedRecords: (z) => index.servedRecords(z),
        health,
        version: VERSION,
        proxyStatus: () => ({ applied: null, caddyUp: false, inSync: false, lastError: 'the Caddy reconciler is not running yet' }),
        caddyfile: (d) => d.routes.map((r) => `# ${r.id}: ${r.hosts.join(' ')} -> ${r.upstreams.join(' ')}`).join('\n'),
        simulate: (fn) => simulate(db, [records, routes], fn),
      });
      await this.api.listen({ host: c.listen_ip, port: c.api_port });
      const apiPort = (this.api.server.address() as { port: number }).port;
      const dnsPort = this.dns.address().port;
      this.log.info('controller started', { version: VERSION, api: `${c.listen_ip}:${apiPort}`, dns: `${c.listen_ip}:${dnsPort}`, zones: c.zones, records: records.count() });
      return { apiPort, dnsPort };
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  async stop(): Promise<void> {
    await this.api?.close().catch(() => undefined);
    await this.dns?.stop().catch(() => undefined);
    this.db?.close();
    this.api = this.dns = this.db = undefined;
  }
}
