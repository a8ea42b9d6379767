// The controller process: store + authoritative DNS + HTTP API, wired together.
// Contract: start() either brings every part up or stops what it started and throws;
// stop() is safe after a partial start and closes the API before DNS before the store.
import type { FastifyInstance } from 'fastify';
import { build } from './api/app.js';
import { rollUp, type HealthReport } from './api/health.js';
import type { Config } from './config/schema.js';
import { DnsServer, ZoneIndex } from './dns/index.js';
import type { ZoneSettings } from './dns/soa.js';
import { logger } from './log/index.js';
import { countRecordsWith } from './metrics.js';
import { openDb, type Db } from './store/db.js';
import { backupInto } from './store/backup.js';
import { RecordStore } from './store/records.js';
import { TokenStore } from './store/tokens.js';
import { RouteStore } from './store/routes.js';
import { simulate, transact } from './store/simulate.js';
import { mailComponent } from './mail/heartbeat.js';
import { mailWiring, type MailWiring } from './mail/wiring.js';
import { ProxyState } from './proxy/state.js';
import { zoneResolver } from './proxy/resolve.js';
import { CaddyAdmin, validateWithCaddy } from './proxy/caddy.js';
import { caddyfileExport } from './proxy/caddyfile.js';
import { CaddyProcess, caddyEnv, caddyPids } from './proxy/process.js';
import { CertWatch, probeCertificate, probeName } from './proxy/certs.js';
import { Reconciler } from './proxy/reconcile.js';
import { markerId, render } from './proxy/render.js';
import { join } from 'node:path';
import { hostname, networkInterfaces } from 'node:os';
import { addressClass } from './model/address.js';
import { ownEndpoints } from './model/endpoints.js';
import { adminTokenProblem } from './model/token.js';
import { VERSION } from './version.js';


export function zoneSettings(config: Config): ZoneSettings[] {
  return config.zones.map((name) => ({
    name,
    nameservers: config.nameservers.length ? config.nameservers : [`ns1.${name}`],
    hostmaster: `hostmaster.${name}`,
    nodeIp: config.node_ip,
  }));
}

/**
 * This node's own addresses, which a proxy upstream may dial only with an admin token: node_ip,
 * listen_ip, and every local address when listen_ip is the unspecified one (then the API and
 * the relay answer on all of them).
 */
export function ownAddresses(config: Pick<Config, 'node_ip' | 'listen_ip'>): string[] {
  const out = new Set([config.node_ip, config.listen_ip]);
  if (addressClass(config.listen_ip) === 'unspecified') for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.add(a.address);
  return [...out];
}

/** Log lines name at most this many record sets; a 10,000-name import would otherwise log ~260 KB in one line. */
const LOGGED_NAMES = 20;

function listed(key: string, sets: readonly { name: string; type: string }[]): Record<string, unknown> {
  const names = sets.slice(0, LOGGED_NAMES).map((r) => `${r.name} ${r.type}`);
  return sets.length > LOGGED_NAMES ? { [key]: names, [`${key}_count`]: sets.length } : { [key]: names };
}

/** Caddy down or routes in error degrade the controller; DNS and the API keep working. */
function proxyHealth(reconciler: Reconciler): HealthReport['components'][string] {
  const s = reconciler.state();
  if (!s.caddyUp) return { status: 'degraded', detail: `Caddy admin API not answering${s.lastError ? `: ${s.lastError}` : ''}; changes apply when it is back` };
  if (s.quarantined.length) return { status: 'degraded', detail: `${s.quarantined.length} route(s) in error: ${s.quarantined.slice(0, 5).join(', ')}` };
  if (s.lastError) return { status: 'degraded', detail: s.lastError };
  return { status: 'ok', ...(s.inSync ? {} : { detail: 'applying changes' }) };
}

export class Controller {
  private db?: Db;
  private uncount?: () => void;
  private dns?: DnsServer;
  private api?: FastifyInstance;
  private mail?: MailWiring;
  private reconciler?: Reconciler;
  private certs?: CertWatch;
  private caddyProcess?: CaddyProcess;
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
      const fixed = process.env.DNSPROXY_ADMIN_TOKEN || undefined;
      const weak = fixed === undefined ? null : adminTokenProblem(fixed);
      if (weak) throw new Error(`DNSPROXY_ADMIN_TOKEN ${weak}`);
      const generated = tokens.bootstrap(fixed);
      if (generated) {
        this.announce(`dnsproxy: first start: admin API token (shown once, stored hashed): ${generated}`);
        this.log.info('admin token generated and printed once');
      }

      const index = new ZoneIndex(zoneSettings(c));
      for (const zone of c.zones) index.load(zone, records.serial(zone), records.list({ zone }));
      // Counted when /metrics is read, and only again after a change (COUNT(*) over a big zone is not free).
      let counts: Map<string, number> | null = null;
      this.uncount = countRecordsWith(() => (counts ??= new Map(c.zones.map((zone) => [zone, records.count(zone)]))));
      records.onChange((change) => {
        // A big change (a zone import) is staged and swapped in whole; the store waits for settled().
        index.apply(change, (warnings) => warnings.length && this.log.warn('records not served', { zone: change.zone, warnings: warnings.slice(0, LOGGED_NAMES) }));
        counts = null;
        this.log.info('records changed', {
          zone: change.zone,
          serial: change.serial,
          ...listed('upserted', change.upserted),
          ...listed('removed', change.removed),
        });
        return index.settled();
      });

      this.dns = new DnsServer({ host: c.listen_ip, port: c.dns_port, index, upstreams: c.upstreams, axfrAllow: c.axfr_allow, recursionAllow: c.recursion_allow });
      await this.dns.start();

      const routes = new RouteStore(db);
      // `own`: the listeners and addresses no route may reach (checked by the API and by render).
      const own = ownEndpoints({ ...c, hostname: hostname() });
      const proxy = new ProxyState(records, routes, zoneResolver(index), { httpPort: c.http_port, httpsPort: c.https_port, listenIp: c.listen_ip, admin: c.caddy_admin, own });
      if (c.caddy_spawn) {
        this.caddyProcess = new CaddyProcess(join(c.data_dir, 'caddy'), c.caddy_admin, logger('caddy'));
        this.caddyProcess.start();
      }
      const caddy = new CaddyAdmin(c.caddy_admin);
      const reconciler = (this.reconciler = new Reconciler({
        desired: () => proxy.desired(),
        render,
        markerId,
        caddy,
        validate: (config) => validateWithCaddy(config, { env: caddyEnv(join(c.data_dir, 'caddy')) }),
        onStatus: (statuses) => {
          proxy.report(statuses);
          this.certs?.watch(proxy.tlsHosts());
        },
      }));
      // Caddy's admin API says nothing of certificates: a handshake per TLS host does (certs.ts).
      const probeIp = addressClass(c.listen_ip) === 'unspecified' ? (c.listen_ip.includes(':') ? '::1' : '127.0.0.1') : c.listen_ip;
      this.certs = new CertWatch({
        probe: (host) => probeCertificate({ ip: probeIp, port: c.https_port, servername: probeName(host) }),
        graceMs: c.cert_grace_ms,
        onChange: (states) => {
          proxy.reportCerts(states);
          for (const [host, s] of states) if (s.state === 'failed') this.log.warn('no certificate for a TLS host; its route is in error', { host, reason: s.reason });
        },
      });
      // After the index serves the change: upstream names inside our zones resolve through it.
      records.onChange(() => void index.settled().then(() => reconciler.trigger()));
      routes.onChange(() => reconciler.trigger());
      reconciler.start();
      if (!c.caddy_spawn)
        void caddy.ping().then((p) => {
          if (!p.up)
            this.log.warn('Caddy admin API does not answer; routes apply as soon as it does', {
              admin: c.caddy_admin,
              hint: 'start Caddy (apt-get install caddy; supervisord runs it in the container) or set DNSPROXY_CADDY_SPAWN=1',
            });
        });
      const ours = caddyPids(c.caddy_admin);
      if (ours.length > 1)
        this.log.warn('more than one caddy process serves this admin address; two can share ports through SO_REUSEPORT, stop the extra ones', { pids: ours, admin: c.caddy_admin });

      const dns = this.dns;
      // The relay is its own process: its heartbeat row in the shared database tells whether it runs.
      const mail = () => {
        try {
          return mailComponent(db, Date.now());
        } catch (e) {
          return { status: 'degraded' as const, detail: `cannot read the mail relay's heartbeat: ${(e as Error).message}` };
        }
      };
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
          proxy: proxyHealth(reconciler),
          mail: mail(),
        });
      };
      this.api = await build({
        zones: c.zones,
        nodeIp: c.node_ip,
        ownAddresses: ownAddresses(c),
        records,
        routes,
        proxy,
        tokens,
        servedRecords: (z) => index.servedRecords(z),
        synthesisedRecords: (z) => index.synthesisedRecords(z),
        health,
        version: VERSION,
        proxyStatus: () => ({ ...reconciler.state(), applied: reconciler.applied() }),
        caddyfile: caddyfileExport,
        simulate: (fn) => simulate(db, [records, routes], fn),
        transaction: (fn) => transact(db, [records, routes], fn),
        mail: (this.mail = mailWiring({ db, records, config: c, dnsPort: () => dns.address().port, transaction: (fn) => transact(db, [records, routes], fn) })).deps,
        backup: () => backupInto(db, c.data_dir),
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
    this.mail?.stop();
    await this.api?.close().catch(() => undefined);
    this.certs?.stop();
    await this.reconciler?.stop().catch(() => undefined);
    await this.caddyProcess?.stop().catch(() => undefined);
    await this.dns?.stop().catch(() => undefined);
    this.uncount?.();
    this.db?.close();
    this.api = this.reconciler = this.certs = this.caddyProcess = this.dns = this.db = this.mail = undefined;
  }
}
