// The mail relay process (`dnsproxy mail serve`): store + SMTP listeners + delivery queue.
// Contract: start() brings every part up or stops what it started and throws; stop() is safe
// after a partial start: listeners stop accepting and open sessions finish (closeTimeoutMs) while
// deliveries in flight finish (drainMs), then the pools and the store close.
import { hostname as osHostname } from 'node:os';
import type { Config } from '../config/schema.js';
import { logger, logLevel } from '../log/index.js';
import { addressClass } from '../model/address.js';
import { openDb, type Db } from '../store/db.js';
import { Authenticator } from './credentials/auth.js';
import type { Delivery } from './queue/delivery.js';
import { ThreadedDelivery } from './queue/queue-threads.js';
import { HEARTBEAT_MS, writeHeartbeat, writeStopped } from './heartbeat.js';
import { mxDnsServers, type MxResolver } from './delivery/mx.js';
import type { RetryPolicy } from './queue/policy.js';
import type { QueueOptions } from './queue/queue.js';
import { ConcurrencyLimit, DataBudget, RateLimiter } from './smtp/ratelimit.js';
import { systemResolver, type DnsResolver } from './resolver.js';
import { SubmissionServer, type InboundOptions, type SessionTimeouts } from './smtp/server.js';
import { MailStore } from './store.js';
import { AuthThrottle, LOCKOUT, LoginLockout, LoginSlots, MAX_AUTHS_PER_ADDRESS, type LockoutOptions, type ThrottleOptions } from './smtp/throttle.js';
import { TLS_POLL_MS, TlsCertificates } from './credentials/tls.js';
import { CertificateStore } from '../certs/store.js';
import { recordAttempt, serveRelayMetrics } from './relay-metrics.js';

export interface MailRelayOptions {
  dataDir: string;
  listenIp: string;
  smtpPort: number;
  submissionPort: number;
  /** Submission over implicit TLS (RFC 8314, usually 465); none: no such listener. */
  smtpsPort?: number | undefined;
  /** The relay's own Prometheus endpoint (relay-metrics.ts); none: not served. */
  metricsPort?: number | undefined;
  hostname: string;
  maxSize: number;
  maxClients: number;
  workers: number;
  retry: RetryPolicy;
  /** Messages one account may submit per hour (token bucket); 0 = no limit. */
  accountMessagesPerHour?: number;
  /** Connections one client IP may open per minute (token bucket); 0 = no limit. */
  ipConnectionsPerMinute?: number;
  /** Sessions one client IP may have open at once, all listeners together; 0 = no limit. */
  maxClientsPerIp?: number;
  /** Message bytes all sessions may hold in memory together (DATA not yet committed); at least maxSize. */
  maxDataInFlight?: number;
  /** The budget itself instead of a new one of maxDataInFlight (tests look into it). */
  dataBudget?: DataBudget;
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  /** Domains the SMTP port takes mail for without AUTH (inbound, we are their MX); none: no mail without AUTH (550 5.7.1 for every recipient). */
  mailDomains?: readonly string[];
  /** DNS servers for the inbound checks (ip or ip:port); none: the system's. */
  dnsServers?: readonly string[];
  /** The inbound checks' DNS instead of node:dns on dnsServers (tests: resolver.ts memoryResolver). */
  resolver?: DnsResolver;
  /** This node's own addresses (node_ip, listen_ip): `smtp` and `http` providers without allow_private never connect there (destination.ts). */
  ownAddresses?: readonly string[];
  /** DNS servers for `mx` providers (mx.ts mxDnsServers()); none: the system's. */
  mxDnsServers?: readonly string[];
  /**
   * `mx` providers' DNS instead of node:dns on mxDnsServers (tests: resolver.ts memoryResolver).
   * A function cannot cross to the delivery thread: with it, delivery runs on the main thread.
   */
  mxResolver?: MxResolver;
  /** inbound.ts CHECK_TIMEOUT_MS unless given. */
  inboundCheckTimeoutMs?: number;
  /** Tuning; the defaults below fit production, tests shorten them. */
  leaseMs?: number;
  pollMs?: number;
  fallbackAfter?: number;
  drainMs?: number;
  closeTimeoutMs?: number;
  authThrottle?: ThrottleOptions;
  /** Lockouts after failed logins (throttle.ts LOCKOUT unless given). */
  authLockout?: LockoutOptions;
  /** AUTH exchanges in progress per client address (throttle.ts MAX_AUTHS_PER_ADDRESS at once unless given: tests look into it). */
  loginSlots?: LoginSlots;
  /** The clock of the login throttle, lockouts and API-key expiry checks (Date.now unless given: tests move it). */
  clock?: () => number;
  /** Waits out a failed login's delay (a timer unless given: tests release it). */
  authSleep?: (ms: number) => Promise<void>;
  heartbeatMs?: number;
  /** How often a certificate set with `dnsproxy mail cert` is looked for (tls.ts TLS_POLL_MS unless given). */
  tlsPollMs?: number;
  /** How often API-key last-used times are written (auth.ts KEY_TOUCH_FLUSH_MS unless given). */
  keyTouchFlushMs?: number;
  /** Idle and total session limits (server.ts constants unless given). */
  sessionTimeouts?: Partial<SessionTimeouts>;
  /** The delivery thread died: the relay can no longer queue or deliver (`mail serve` exits, supervisord restarts it). */
  onFatal?: (e: Error) => void;
}

const DEFAULTS = {
  /** Renewed every 40 s while a delivery runs; after a crash the message waits at most this long. */
  leaseMs: 120_000,
  pollMs: 1000,
  fallbackAfter: 2,
  /** Side by side with closeTimeoutMs, inside supervisord's stopwaitsecs=15. */
  drainMs: 10_000,
  closeTimeoutMs: 10_000,
  /** 1 s after the first bad password from an address, doubling to 30 s; forgotten after 15 min. */
  authThrottle: { baseMs: 1000, maxMs: 30_000, windowMs: 15 * 60_000 },
  /** The controller's /health calls the relay stale after HEARTBEAT_STALE_MS (30 s) without one. */
  heartbeatMs: HEARTBEAT_MS,
  tlsPollMs: TLS_POLL_MS,
  /** As the config's defaults (mail_account_messages_per_hour, mail_ip_connections_per_minute). */
  accountMessagesPerHour: 3600,
  ipConnectionsPerMinute: 600,
  /** As the config's defaults (mail_max_clients_per_ip, mail_max_data_in_flight). */
  maxClientsPerIp: 10,
  maxDataInFlight: 64 * 1024 * 1024,
} as const;

export function relayOptions(c: Config): MailRelayOptions {
  return {
    dataDir: c.data_dir,
    listenIp: c.listen_ip,
    smtpPort: c.smtp_port,
    submissionPort: c.submission_port,
    smtpsPort: c.smtps_port,
    metricsPort: c.mail_metrics_port,
    hostname: c.mail_hostname ?? osHostname(),
    maxSize: c.mail_max_size,
    maxClients: c.mail_max_clients,
    workers: c.mail_workers,
    retry: { baseMs: c.mail_retry_base_ms, maxMs: c.mail_retry_max_ms, giveUpMs: c.mail_give_up_ms },
    accountMessagesPerHour: c.mail_account_messages_per_hour,
    ipConnectionsPerMinute: c.mail_ip_connections_per_minute,
    maxClientsPerIp: c.mail_max_clients_per_ip,
    maxDataInFlight: c.mail_max_data_in_flight,
    tlsCert: c.mail_tls_cert,
    tlsKey: c.mail_tls_key,
    mailDomains: c.mail_domains,
    dnsServers: c.mail_dns_servers,
    mxDnsServers: mxDnsServers({ configured: c.mail_dns_servers, upstreams: c.upstreams, listenIp: c.listen_ip, dnsPort: c.dns_port }),
    ownAddresses: [...new Set([c.node_ip, c.listen_ip])].filter((ip) => addressClass(ip) !== 'unspecified'),
  };
}

export class MailRelay {
  private db?: Db;
  private servers: SubmissionServer[] = [];
  private delivery?: Delivery;
  private heartbeat?: { timer: NodeJS.Timeout; owner: string };
  private auth?: Authenticator;
  private tlsTimer?: NodeJS.Timeout;
  private metrics?: { port: number; close: () => Promise<void> };
  private readonly log = logger('mail');

  constructor(private readonly opts: MailRelayOptions) {}

  async start(): Promise<{ smtpPort: number; submissionPort: number; smtpsPort?: number; metricsPort?: number }> {
    const o = { ...DEFAULTS, ...this.opts };
    try {
      const db = (this.db = openDb(o.dataDir));
      const store = new MailStore(db);
      // The certificate store's certificate for the host name comes first (src/certs, one store for HTTPS and mail).
      const certificates = new TlsCertificates(store, { dataDir: o.dataDir, hostname: o.hostname, certFile: o.tlsCert, keyFile: o.tlsKey }, undefined, new CertificateStore(db));
      const tls = await certificates.load();
      const auth = (this.auth = new Authenticator(store, { ...(o.keyTouchFlushMs === undefined ? {} : { touchFlushMs: o.keyTouchFlushMs }), ...(o.clock ? { now: o.clock } : {}) }));

      const queue: QueueOptions = { workers: o.workers, leaseMs: o.leaseMs, pollMs: o.pollMs, retry: o.retry, fallbackAfter: o.fallbackAfter, drainMs: o.drainMs, hostname: o.hostname };
      const setup = { dataDir: o.dataDir, hostname: o.hostname, queue, ...(o.mxDnsServers ? { mxDnsServers: o.mxDnsServers } : {}), ...(o.ownAddresses ? { ownAddresses: o.ownAddresses } : {}), logLevel: logLevel() };
      const fatal = (e: Error) => {
        clearInterval(this.heartbeat?.timer); // /health: mail goes stale, then down
        o.onFatal?.(e);
      };
      const q = (this.delivery = o.mxResolver ? (await import('./queue/delivery.js')).localDelivery(db, setup, o.mxResolver, recordAttempt) : await ThreadedDelivery.start(setup, fatal));

      const throttle = new AuthThrottle(o.authThrottle, o.clock);
      const lockout = new LoginLockout(o.authLockout ?? LOCKOUT, o.clock);
      const slots = o.loginSlots ?? new LoginSlots(MAX_AUTHS_PER_ADDRESS);
      const accountRate = new RateLimiter({ limit: o.accountMessagesPerHour, perMs: 3_600_000 });
      const connectionRate = new RateLimiter({ limit: o.ipConnectionsPerMinute, perMs: 60_000 });
      const clientsPerIp = new ConcurrencyLimit(o.maxClientsPerIp);
      // A message of the largest size must always fit (config.ts refuses a smaller budget).
      const dataBudget = o.dataBudget ?? new DataBudget(Math.max(o.maxDataInFlight, o.maxSize));
      const server = (listener: { inbound?: InboundOptions; implicitTls?: boolean } = {}) => {
        const s = new SubmissionServer(
          { store, queue: q, auth, throttle, lockout, slots, accountRate, connectionRate, clientsPerIp, dataBudget, ...(o.authSleep ? { sleep: o.authSleep } : {}) },
          { hostname: o.hostname, maxSize: o.maxSize, maxClients: o.maxClients, tls, closeTimeoutMs: o.closeTimeoutMs, ...(o.sessionTimeouts ? { timeouts: o.sessionTimeouts } : {}), ...listener },
        );
        this.servers.push(s);
        return s;
      };
      // The SMTP port is an MX's: without AUTH, mail for mail_domains only, every other recipient
      // 550 5.7.1 (with no mail_domains, every one). The submission ports always want AUTH (530).
      const domains = [...new Set((o.mailDomains ?? []).map((d) => d.toLowerCase().replace(/\.$/, '')))];
      const inbound: InboundOptions = { domains: new Set(domains), resolver: o.resolver ?? systemResolver(o.dnsServers), ...(o.inboundCheckTimeoutMs ? { checkTimeoutMs: o.inboundCheckTimeoutMs } : {}) };
      const smtpPort = await server({ inbound }).listen(o.smtpPort, o.listenIp);
      const submissionPort = await server().listen(o.submissionPort, o.listenIp);
      const smtpsPort = o.smtpsPort === undefined ? undefined : await server({ implicitTls: true }).listen(o.smtpsPort, o.listenIp);
      this.metrics = o.metricsPort === undefined ? undefined : await serveRelayMetrics(o.listenIp, o.metricsPort);
      const ports = { smtpPort, submissionPort, ...(smtpsPort === undefined ? {} : { smtpsPort }), ...(this.metrics ? { metricsPort: this.metrics.port } : {}) };
      // A certificate set or removed with `dnsproxy mail cert` reaches the next TLS handshake on every listener.
      let polling = false; // one poll at a time (making a self-signed pair can outlast the interval)
      const reloadTls = async () => {
        if (polling) return;
        polling = true;
        try {
          const next = await certificates.poll();
          if (next) for (const s of this.servers) s.setTls(next);
        } catch (e) {
          this.log.warn('checking for a new TLS certificate failed; the current one stays', { error: (e as Error).message });
        } finally {
          polling = false;
        }
      };
      this.tlsTimer = setInterval(() => void reloadTls(), o.tlsPollMs);
      this.tlsTimer.unref();
      // Only once every listener accepts and the queue runs: a fresh heartbeat means "serving".
      const startedAt = Date.now();
      const beat = () => {
        try {
          writeHeartbeat(db, q.owner, startedAt, Date.now());
        } catch (e) {
          this.log.warn('writing the heartbeat failed; /health shows mail degraded if this lasts', { error: (e as Error).message });
        }
      };
      beat();
      this.heartbeat = { timer: setInterval(beat, o.heartbeatMs), owner: q.owner };
      this.log.info('mail relay started', {
        smtp: `${o.listenIp}:${smtpPort}`,
        submission: `${o.listenIp}:${submissionPort}`,
        ...(smtpsPort === undefined ? {} : { smtps: `${o.listenIp}:${smtpsPort}` }),
        hostname: o.hostname,
        owner: q.owner,
        inbound_domains: domains,
      });
      return ports;
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  async stop(): Promise<void> {
    await this.metrics?.close();
    this.metrics = undefined;
    clearInterval(this.heartbeat?.timer);
    clearInterval(this.tlsTimer);
    await Promise.all([...this.servers.map((s) => s.close()), this.delivery?.stop()]);
    await this.delivery?.close(); // the listeners are closed: nothing enqueues any more
    this.auth?.close(); // writes pending key last-used times (a failure is logged, never thrown)
    if (this.heartbeat && this.db)
      try {
        writeStopped(this.db, this.heartbeat.owner, Date.now());
      } catch (e) {
        this.log.warn('recording the stop in the heartbeat failed; /health sees it go stale', { error: (e as Error).message });
      }
    this.db?.close();
    this.servers = [];
    this.delivery = this.db = this.heartbeat = this.auth = this.tlsTimer = undefined;
  }
}
