// The controller process: store + authoritative DNS + HTTP API, wired together.
// Contract: start() either brings every part up or stops what it started and throws;
// stop() is safe after a partial start and closes the API before DNS before the store.
import type { FastifyInstance } from 'fastify';
import { build } from './api/app.js';
import { rollUp, type HealthReport } from './api/health.js';
import type { Config } from './config/schema.js';
import { DnsServer, PlainUpstreams, ZoneIndex } from './dns/index.js';
import type { ZoneSettings } from './dns/soa.js';
import { logger } from './log/index.js';
import { countRecordsWith } from './metrics.js';
import { openDb, type Db } from './store/db.js';
import type { ApiDeps } from './api/app.js';
import { backupInto } from './store/backup.js';
import { RecordStore } from './store/records.js';
import { TokenStore } from './store/tokens.js';
import { RouteStore } from './store/routes.js';
import { simulate, transact } from './store/simulate.js';
import { GroupCommit, type GroupCommitOptions } from './store/group.js';
import { ViewStore } from './store/views.js';
import { ViewTable } from './dns/views.js';
import { mailComponent } from './mail/heartbeat.js';
import { mtaStsRoutes } from './mail/domains/mta-sts.js';
import { mailHostname, mailWiring, type MailWiring } from './mail/wiring.js';
import { ProxyState } from './proxy/state.js';
import { zoneResolver } from './proxy/resolve.js';
import { CaddyAdmin, validateWithCaddy } from './proxy/caddy.js';
import { caddyfileExport } from './proxy/caddyfile.js';
import { CaddyProcess, caddyEnv, caddyPids } from './proxy/process.js';
import { ChangePipeline } from './proxy/pipeline.js';
import { ON_DEMAND_BURST, ON_DEMAND_INTERVAL, startOnDemandServer, type OnDemandServer } from './proxy/ondemand.js';
import type { OnDemandSettings } from './proxy/types.js';
import type { AcmeIssuerSettings } from './proxy/acme.js';
import { Reconciler, type ReconcilerOptions } from './proxy/reconcile.js';
import type { CaddyApi } from './proxy/caddy.js';
import { CertWatch, probeCertificate, probeName } from './proxy/certs.js';
import { markerId, render } from './proxy/render.js';
import { HostStats } from './proxy/stats.js';
import { LatencyRanker } from './proxy/latency.js';
import { RecoveryWatcher } from './proxy/recovery.js';
import { PortGuard } from './proxy/ports.js';
import { startAccessLogServer, type AccessLogServer } from './proxy/access-log.js';
import { parseUpstreams, type UpstreamStatus } from './proxy/backend-health.js';
import { join } from 'node:path';
import { hostname, networkInterfaces } from 'node:os';
import { addressClass } from './model/address.js';
import { ownEndpoints } from './model/endpoints.js';
import { adminTokenProblem } from './model/token.js';
import { VERSION } from './version.js';
import { tailnetOnly } from './config/schema.js';
import { DeviceBindingStore } from './store/devices.js';
import { DeviceBinder, Devices, deviceResolver, statusSource, type StatusSource, type TailnetDeps } from './tailnet/index.js';
import type { Timers } from './timers.js';
import { configChanges, FileWatch } from './config/watch.js';
import { setLogLevel } from './log/index.js';
import { StateWatch } from './state/watch.js';
import { CertificateStore } from './certs/store.js';
import { DEFAULT_ACME_DIRECTORY, Dns01Issuer, Renewer } from './certs/acme.js';
import { certHealth, certMetricsFrom, certStates } from './certs/health.js';
import { dns2Resolver } from './mail/resolver.js';
import { systemTimers } from './timers.js';
import { readFileSync } from 'node:fs';
import type { StateDeps } from './state/state.js';


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
/** Caddy's upstream pool for the route views (backend health); null when Caddy does not answer. */
function upstreamPoolOf(caddy: CaddyAdmin): () => Promise<Map<string, UpstreamStatus> | null> {
  return async () => {
    try {
      return parseUpstreams(await caddy.upstreams());
    } catch {
      return null;
    }
  };
}

function proxyHealth(reconciler: Reconciler): HealthReport['components'][string] {
  const s = reconciler.state();
  if (!s.caddyUp) return { status: 'degraded', detail: `Caddy admin API not answering${s.lastError ? `: ${s.lastError}` : ''}; changes apply when it is back` };
  if (s.quarantined.length) return { status: 'degraded', detail: `${s.quarantined.length} route(s) in error: ${s.quarantined.slice(0, 5).join(', ')}` };
  if (s.lastError) return { status: 'degraded', detail: s.lastError };
  return { status: 'ok', ...(s.inSync ? {} : { detail: 'applying changes' }) };
}


/** Where our DNS server can be asked from this node: listen_ip, or loopback when that is the unspecified address. */
export function dnsResolverAddress(listenIp: string, port: number): string {
  const kind = addressClass(listenIp);
  const ip = kind === 'unspecified' ? (listenIp.includes(':') ? '::1' : '127.0.0.1') : listenIp;
  return ip.includes(':') ? `udp/[${ip}]:${port}` : `udp/${ip}:${port}`;
}

/** The addresses our DNS answers plain names' backends to: this node's own (Caddy asks from one of them). */
export function plainAllow(config: Pick<Config, 'node_ip' | 'listen_ip'>): string[] {
  return ['127.0.0.0/8', '::1/128', ...ownAddresses(config).filter((a) => addressClass(a) !== 'unspecified')];
}

export interface WireDeps {
  db: Db;
  /** Caddy's admin API; null: no reconciler (tests of the API alone). */
  caddy: CaddyApi | null;
  /** Reconciler knobs (tests pass timers, validate, …). */
  reconciler?: Partial<Omit<ReconcilerOptions, 'desired' | 'caddy' | 'onStatus'>>;
  /** How the pipeline defers its work off the writer's stack (default setImmediate). */
  defer?: (fn: () => void) => void;
  /** hostname(), for the endpoints no route may reach. */
  hostname?: string;
  /** The API writes' group commit: how its flush is deferred, a hook per commit (tests). */
  group?: Pick<GroupCommitOptions, 'defer' | 'committed' | 'queued'>;
  /** The tailnet device list's source and poll timer (default: the settings' LocalAPI socket or CLI, real timers). */
  devices?: { source?: StatusSource | null; timers?: Timers };
  /** The certificate store's clock (checks of uploads, renewal times); default the system's. */
  certsNow?: () => Date;
  /** Where our DNS server answers (the DNS-01 issuer checks its challenges there); default dns_port. */
  dnsPort?: () => number;
  /** The ACME issuer's timers (default the system's). */
  certTimers?: Timers;
  /** The least_latency probes' clock and timers (default the system's). */
  latency?: { now?: () => number; timers?: Timers };
  /** The dead-backend watcher's clock and timers (default the system's). */
  recovery?: { now?: () => number; timers?: Timers };
}

export interface Wired {
  records: RecordStore;
  routes: RouteStore;
  tokens: TokenStore;
  /** Split-horizon views: the store, and the table the DNS server matches clients against (kept in step). */
  views: ViewStore;
  viewTable: ViewTable;
  index: ZoneIndex;
  proxy: ProxyState;
  plain: PlainUpstreams;
  reconciler: Reconciler | null;
  pipeline: ChangePipeline;
  /** The API writes' group commit (one transaction per event-loop turn). */
  group: GroupCommit;
  /** Extra ports another process holds (src/proxy/ports.ts); stop() it with the reconciler. */
  ports: PortGuard;
  /** least_latency routes' probes and ranking (src/proxy/latency.ts): probes once start() runs; stop() it with the reconciler. */
  latency: LatencyRanker;
  /** Backends taken out after failed requests and probed back (src/proxy/recovery.ts): runs once start() runs; stop() it with the reconciler. */
  recovery: RecoveryWatcher;
  /** Stops /metrics from counting this wiring's records (the gauge reads them when scraped). */
  uncount: () => void;
  /** Tailnet devices: polled once `devices.registry.start()` runs; each change re-binds records and re-resolves routes. */
  devices: TailnetDeps;
  /** Uploaded and ACME-issued certificates (src/certs): Caddy loads every one; a change triggers the reconciler. */
  certificates: CertificateStore;
  /** ACME DNS-01 from our zones (src/certs/acme.ts): orders through the API; the controller adds its Renewer. */
  acme: Dns01Issuer;
  /** The API's dependencies that come from the wiring (the caller adds health, mail, …). */
  api: Pick<ApiDeps, 'zones' | 'nodeIp' | 'ownAddresses' | 'records' | 'routes' | 'proxy' | 'tokens' | 'views' | 'servedRecords' | 'synthesisedRecords' | 'proxyStatus' | 'caddyfile' | 'simulate' | 'transaction' | 'commit' | 'settled' | 'devices' | 'certificates' | 'upstreamPool' | 'recovery' | 'recoveryClear' | 'plannedRoutes' | 'acme'>;
}

/**
 * The controller's wiring, shared with the API test fixture: stores, the zone index, the proxy
 * state, the reconciler and the change pipeline that alone connects them (pipeline.ts). Nothing
 * listens or pushes until `pipeline.start()` and `reconciler.start()`.
 */
/** The ACME issuer settings of `tls: acme` names, from the `acme_*` settings (src/proxy/acme.ts). */
export function acmeSettings(c: Pick<Config, 'acme_ca' | 'acme_ca_root' | 'acme_email' | 'acme_challenges'>): AcmeIssuerSettings {
  return {
    ...(c.acme_ca !== undefined ? { ca: c.acme_ca } : {}),
    ...(c.acme_ca_root !== undefined ? { trustedRoots: [c.acme_ca_root] } : {}),
    ...(c.acme_email !== undefined ? { email: c.acme_email } : {}),
    challenges: c.acme_challenges,
  };
}

export function wire(c: Config, deps: WireDeps): Wired {
  const { db } = deps;
  const records = new RecordStore(db, c.zones);
  const tokens = new TokenStore(db);
  const routes = new RouteStore(db);
  const views = new ViewStore(db);
  const certificates = new CertificateStore(db, deps.certsNow);
  // ACME DNS-01 from our own zones: the challenges are records in our zones, checked against our own server (loopback when listen_ip is unspecified).
  const dnsHost = addressClass(c.listen_ip) === 'unspecified' ? (c.listen_ip.includes(':') ? '::1' : '127.0.0.1') : c.listen_ip;
  const acme = new Dns01Issuer({
    store: certificates,
    records,
    transaction: <T>(fn: () => T): T => transaction(fn),
    zones: c.zones,
    resolver: ((name: string, type: string) => dns2Resolver(dnsHost, deps.dnsPort?.() ?? c.dns_port)(name, type)),
    acme: { directoryUrl: c.acme_ca ?? DEFAULT_ACME_DIRECTORY, ...(c.acme_ca_root ? { caRootPem: readFileSync(c.acme_ca_root, 'utf8') } : {}), ...(c.acme_email ? { email: c.acme_email } : {}) },
    dir: join(c.data_dir, 'acme'),
    now: deps.certsNow ?? (() => new Date()),
    timers: deps.certTimers ?? systemTimers,
    log: logger('certs.acme'),
  });
  const viewTable = new ViewTable();
  viewTable.replace(views.list());
  views.onChange((list) => viewTable.replace(list));
  const index = new ZoneIndex(zoneSettings(c));
  for (const zone of c.zones) index.load(zone, records.serial(zone), records.list({ zone }), records.soa(zone));
  // `own`: the listeners and addresses no route may reach (checked by the API and by render).
  const own = ownEndpoints({ ...c, hostname: deps.hostname ?? hostname() });
  const registry = new Devices({ source: deps.devices?.source === undefined ? statusSource(c) : deps.devices.source, pollMs: c.device_poll_ms, ...(deps.devices?.timers ? { timers: deps.devices.timers } : {}), log: logger('tailnet') });
  const proxy = new ProxyState(records, routes, deviceResolver(zoneResolver(index), registry), {
    httpPort: c.http_port,
    httpsPort: c.https_port,
    listenIp: c.listen_ip,
    admin: c.caddy_admin,
    own,
    ...(tailnetOnly(c) ? { allowClients: c.tailnet_ranges } : {}),
    acme: acmeSettings(c),
  });
  const plain = new PlainUpstreams();
  // Counted when /metrics is read, and only again after a change (COUNT(*) over a big zone is not free).
  let counts: Map<string, number> | null = null;
  const uncount = countRecordsWith(() => (counts ??= new Map(c.zones.map((zone) => [zone, records.count(zone)]))));
  // A route's extra port held by another process: its routes are left out, the rest served (ports.ts).
  const ports = new PortGuard({
    ip: c.listen_ip,
    listenPorts: () => new Set(proxy.desired().routes.flatMap((r) => (r.listen ? [r.listen.port] : []))),
    onChange: () => reconciler?.trigger(),
  });
  // least_latency routes: probed here, rendered as `first` in ranked order (latency.ts).
  const latency = new LatencyRanker({
    now: deps.latency?.now ?? Date.now,
    timers: deps.latency?.timers ?? systemTimers,
    routes: () => proxy.desired().routes,
    onChange: () => reconciler?.trigger(),
    log: logger('proxy.latency'),
  });
  // Backends failed by requests on routes without an active check: out of Caddy, probed back (recovery.ts).
  const pool = deps.caddy instanceof CaddyAdmin ? upstreamPoolOf(deps.caddy) : null;
  const recovery = new RecoveryWatcher({
    now: deps.recovery?.now ?? Date.now,
    timers: deps.recovery?.timers ?? systemTimers,
    routes: () => proxy.desired().routes,
    pool: async () => {
      const p = pool ? await pool() : null;
      if (!p) throw new Error('Caddy upstream pool not readable');
      return p;
    },
    onChange: () => reconciler?.trigger(),
    log: logger('proxy.recovery'),
  });
  // The explicit routes as Caddy gets them: health-dead backends left out, least_latency ranked (the plan compares against this too).
  const rendered = () => latency.apply(recovery.apply(proxy.desired()));
  const reconciler = deps.caddy
    ? new Reconciler({
        render,
        markerId,
        ...deps.reconciler,
        // Expired certificates are left out: Caddy then gets its own for those names (at the next reconcile).
        desired: () => ports.apply({ ...rendered(), certificates: certificates.served((deps.certsNow?.() ?? new Date()).getTime()) }),
        caddy: deps.caddy,
        // Called only after reconciler.start(), by when `pipeline` exists.
        onStatus: (statuses) => {
          ports.saw(statuses);
          pipeline.reported(statuses);
        },
      })
    : null;
  // A stored certificate changed: Caddy loads the new set (a no-op when the render is unchanged).
  certificates.onChange(() => reconciler?.trigger());
  const log = logger('pipeline');
  const pipeline = new ChangePipeline({
    records,
    routes,
    index,
    proxy,
    plain,
    ...(reconciler ? { reconciler } : {}),
    ...(deps.defer ? { defer: deps.defer } : {}),
    ...(deps.reconciler?.now ? { now: deps.reconciler.now } : {}),
    log,
    onRecords: (change) => {
      counts = null;
      log.info('records changed', { zone: change.zone, serial: change.serial, ...listed('upserted', change.upserted), ...listed('removed', change.removed) });
    },
  });
  const transaction = <T>(fn: () => T): T => transact(db, [records, routes, views, certificates], fn);
  // The API's writes: one commit (one fsync) per turn for all of them; a zone import's turn is waited out.
  const group = new GroupCommit(db, [records, routes, views, certificates], { ...deps.group, ready: () => records.busy });
  const bindings = new DeviceBindingStore(db);
  const binder = new DeviceBinder({ devices: registry, bindings, records, transaction, log: logger('tailnet') });
  // A device moved: bound records are rewritten (ordinary writes, through the pipeline), and routes naming `device:` upstreams are rebuilt.
  registry.on('change', () => {
    binder.sync();
    pipeline.resolversChanged();
  });
  const devices: TailnetDeps = { registry, binder, bindings };
  return {
    records,
    routes,
    tokens,
    views,
    viewTable,
    index,
    proxy,
    plain,
    reconciler,
    pipeline,
    group,
    ports,
    latency,
    recovery,
    uncount,
    devices,
    certificates,
    acme,
    api: {
      zones: c.zones,
      nodeIp: c.node_ip,
      ownAddresses: ownAddresses(c),
      records,
      routes,
      proxy,
      tokens,
      views,
      servedRecords: (z) => index.servedRecords(z),
      synthesisedRecords: (z) => index.synthesisedRecords(z),
      proxyStatus: () => (reconciler ? { ...reconciler.state(), applied: reconciler.applied() } : { applied: null, caddyUp: false, inSync: false, lastError: null }),
      caddyfile: caddyfileExport,
      ...(pool ? { upstreamPool: pool } : {}),
      recovery: (id) => recovery.marks(id),
      recoveryClear: (id, dial) => {
        if (!recovery.clear(id, dial)) return false;
        reconciler?.trigger();
        return true;
      },
      plannedRoutes: () => rendered().routes,
      simulate: (fn) => simulate(db, [records, routes, views, certificates], fn),
      transaction,
      commit: (fn) => group.run(fn),
      settled: () => pipeline.settled(),
      devices,
      certificates,
      acme,
    },
  };
}

export class Controller {
  private db?: Db;
  private uncount?: () => void;
  private dns?: DnsServer;
  private api?: FastifyInstance;
  private mail?: MailWiring;
  private reconciler?: Reconciler;
  private certs?: CertWatch;
  private onDemand?: OnDemandServer;
  private accessLog?: AccessLogServer;
  private ports?: PortGuard;
  private latency?: LatencyRanker;
  private recovery?: RecoveryWatcher;
  private caddyProcess?: CaddyProcess;
  private devices?: Devices;
  private stateDeps?: StateDeps;
  private stateWatch?: StateWatch;
  private configWatch?: FileWatch;
  private renewer?: Renewer;
  private uncertify?: () => void;
  private readonly log = logger('controller');

  constructor(
    private readonly config: Config,
    /** Where the generated first-start token is shown (once). */
    private readonly announce: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
    /** The certificates' clock and renewal timers (tests drive them; default the system's). */
    private readonly clock: { now?: () => Date; timers?: Timers } = {},
  ) {}

  async start(): Promise<{ apiPort: number; dnsPort: number }> {
    const c = this.config;
    try {
      const db = (this.db = openDb(c.data_dir));
      if (c.caddy_spawn) {
        this.caddyProcess = new CaddyProcess(join(c.data_dir, 'caddy'), c.caddy_admin, logger('caddy'));
        this.caddyProcess.start();
      }
      const caddy = new CaddyAdmin(c.caddy_admin);
      const certsNow = this.clock.now ?? (() => new Date());
      const wired = wire(c, { db, caddy, certsNow, dnsPort: () => this.dns?.address().port ?? c.dns_port, ...(this.clock.timers ? { certTimers: this.clock.timers } : {}), reconciler: { validate: (config) => validateWithCaddy(config, { env: caddyEnv(join(c.data_dir, 'caddy')) }) } });
      const { records, tokens, index, proxy, plain, pipeline } = wired;
      this.uncount = wired.uncount;
      this.ports = wired.ports;
      this.latency = wired.latency;
      this.recovery = wired.recovery;
      const reconciler = (this.reconciler = wired.reconciler!);
      const fixed = process.env.DNSPROXY_ADMIN_TOKEN || undefined;
      const weak = fixed === undefined ? null : adminTokenProblem(fixed);
      if (weak) throw new Error(`DNSPROXY_ADMIN_TOKEN ${weak}`);
      const generated = tokens.bootstrap(fixed);
      if (generated) {
        this.announce(`dnsproxy: first start: admin API token (shown once, stored hashed): ${generated}`);
        this.log.info('admin token generated and printed once');
      }

      this.dns = new DnsServer({ host: c.listen_ip, port: c.dns_port, index, upstreams: c.upstreams, axfrAllow: c.axfr_allow, recursionAllow: c.recursion_allow, plain: { table: plain, allow: plainAllow(c) }, views: wired.viewTable });
      await this.dns.start();
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
      // After each status report (the pipeline's, after ProxyState has it): probe the TLS hosts Caddy now runs.
      pipeline.on('status', () => this.certs?.watch(proxy.tlsHosts()));
      // Plain names are served by Caddy asking this DNS server (src/proxy/README.md, "Dynamic routes");
      // plain TLS names get certificates on demand, Caddy asking the loopback endpoint first.
      let onDemand: OnDemandSettings | undefined;
      if (c.tls_on_demand !== 'off') {
        const issuer = c.tls_on_demand;
        this.onDemand = await startOnDemandServer({ port: c.tls_ask_port, issuer, httpsPort: c.https_port, lookup: (host) => plain.get(host)?.tls, log: logger('on-demand') });
        plain.redirectTo({ ip: this.onDemand.ip, port: this.onDemand.port });
        onDemand = { issuer, ask: this.onDemand.askUrl, rateLimit: { interval: ON_DEMAND_INTERVAL, burst: ON_DEMAND_BURST } };
      }
      proxy.useResolver(dnsResolverAddress(c.listen_ip, this.dns.address().port), onDemand);
      // Per-host stats (setting `stats`): Caddy's access log to a loopback listener, up before the
      // first push (Caddy 2.6.2 refuses a load whose net log writer it cannot dial).
      // Counted per host: the names Caddy runs a route for (after each status report) and plain names; the rest as one.
      let stats: HostStats | undefined;
      if (c.stats) {
        let served = new Set<string>();
        pipeline.on('status', () => (served = new Set((reconciler.applied()?.routes ?? []).flatMap((r) => r.hosts))));
        stats = new HostStats({ accept: (h) => plain.has(h) || served.has(h) || (h.includes('.') && served.has(`*${h.slice(h.indexOf('.'))}`)) });
        this.accessLog = await startAccessLogServer({ port: c.stats_port, stats, log: logger('stats') });
        proxy.useAccessLog(this.accessLog.address);
      }
      // Each mail domain's MTA-STS policy, served by Caddy itself (src/mail/domains/mta-sts.ts).
      proxy.useStatics(mtaStsRoutes(db, { hostname: mailHostname(c), tls: c.mail_mta_sts_tls }));
      pipeline.start();
      reconciler.start();
      wired.latency.start();
      wired.recovery.start();
      (this.devices = wired.devices.registry).start();
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
      // Expiry within 7 days with no working renewal degrades the controller (src/certs/health.ts).
      const certificates = (): HealthReport['components'][string] => {
        try {
          return certHealth(certStates(wired.certificates), certsNow().getTime());
        } catch (e) {
          return { status: 'degraded', detail: `cannot read the certificates: ${(e as Error).message}` };
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
          certificates: certificates(),
          // Only while serve --watch runs: whether the state file's last version was applied.
          ...(this.stateWatch ? { state_file: this.stateWatch.health() } : {}),
        });
      };
      // ACME certificates are renewed at two thirds of their lifetime (src/certs/acme.ts).
      const issuer = wired.acme;
      const renewer = (this.renewer = new Renewer(issuer, { store: wired.certificates, now: certsNow, timers: this.clock.timers ?? systemTimers, log: logger('certs.acme') }));
      issuer.on('issued', () => renewer.schedule());
      renewer.start();
      this.uncertify = certMetricsFrom(wired.certificates, () => certsNow().getTime());
      const apiDeps: ApiDeps = {
        ...wired.api,
        health,
        version: VERSION,
        mail: (this.mail = mailWiring({ db, records: wired.records, config: c, dnsPort: () => dns.address().port, transaction: wired.api.transaction })).deps,
        backup: () => backupInto(db, c.data_dir),
        localCa: () => caddy.localCa(),
        ...(stats ? { stats } : {}),
      };
      this.stateDeps = apiDeps;
      this.api = await build(apiDeps);
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

  /**
   * `serve --watch <file>`: applies the state file now and after every save; a refused version
   * leaves the last good state serving and shows in /health (`state_file`). After start().
   */
  async watchState(file: string, prune: boolean): Promise<StateWatch> {
    if (!this.stateDeps) throw new Error('watchState() before start()');
    const w = (this.stateWatch = new StateWatch({ file, deps: this.stateDeps, prune, log: logger('state') }));
    await w.start();
    return w;
  }

  /**
   * Watches the config file: a setting that can change while running (LIVE_SETTINGS: the log
   * level) takes effect, every other changed one is logged as needing a restart. A file that no
   * longer loads changes nothing (logged).
   */
  async watchConfig(file: string, reload: () => Config): Promise<FileWatch> {
    const log = logger('config');
    let running = this.config;
    const w = (this.configWatch = new FileWatch({
      file,
      onChange: async () => {
        let next: Config;
        try {
          next = reload();
        } catch (e) {
          log.error('config file refused; the running settings stay', { file, error: (e as { lines?: string[] }).lines ?? (e as Error).message });
          return;
        }
        const { live, restart } = configChanges(running, next);
        if (live.includes('log_level')) setLogLevel(next.log_level);
        running = { ...running, ...Object.fromEntries(live.map((k) => [k, next[k]])) };
        if (live.length) log.info('config file changed: applied', { file, settings: live });
        if (restart.length) log.warn('config file changed: these settings take effect at the next restart', { file, settings: restart });
      },
    }));
    await w.ready;
    return w;
  }

  async stop(): Promise<void> {
    await this.configWatch?.close().catch(() => undefined);
    await this.stateWatch?.stop().catch(() => undefined);
    this.mail?.stop();
    await this.api?.close().catch(() => undefined);
    await this.renewer?.stop().catch(() => undefined);
    this.certs?.stop();
    await this.devices?.stop();
    this.ports?.stop();
    this.latency?.stop();
    await this.recovery?.stop();
    await this.reconciler?.stop().catch(() => undefined);
    await this.caddyProcess?.stop().catch(() => undefined);
    await this.dns?.stop().catch(() => undefined);
    await this.onDemand?.close().catch(() => undefined);
    await this.accessLog?.close().catch(() => undefined);
    this.uncount?.();
    this.uncertify?.();
    this.db?.close();
    this.renewer = this.uncertify = undefined;
    this.latency = this.recovery = undefined;
    this.api = this.reconciler = this.certs = this.caddyProcess = this.dns = this.db = this.mail = this.onDemand = this.devices = this.accessLog = undefined;
    this.stateWatch = this.configWatch = this.stateDeps = undefined;
  }
}
