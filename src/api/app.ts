// build() makes the HTTP API without listening, so tests use inject() and `serve` adds listen().
import type { HealthDead } from '../proxy/recovery.js';
import type { UpstreamStatus } from '../proxy/backend-health.js';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { ServedRecord } from '../dns/soa.js';
import { logger } from '../log/index.js';
import { apiLatency, apiRequests } from '../metrics.js';
import type { RecordStore } from '../store/records.js';
import type { RouteStore } from '../store/routes.js';
import type { TokenStore } from '../store/tokens.js';
import type { ViewStore } from '../store/views.js';
import type { CertificateStore } from '../certs/store.js';
import type { Dns01Issuer } from '../certs/acme.js';
import type { ProxyState } from '../proxy/state.js';
import type { LocalCaInfo } from '../proxy/caddy.js';
import type { TailnetDeps } from '../tailnet/index.js';
import type { DesiredProxy, DesiredRoute } from '../proxy/types.js';
import type { MailStore } from '../mail/store.js';
import type { MessageStore } from '../mail/queue/messages.js';
import type { MailDomains } from '../mail/domains/domains.js';
import { DOCS_PREFIX, installAuth, type AccountKeys } from './auth.js';
import { errorOptions, installErrorHandling } from './errors.js';
import type { HealthReport } from './health.js';
import { legacyRoutes } from './legacy.js';
import { backupRoutes } from './backup.js';
import { caRoutes } from './ca.js';
import { mailRoutes } from './mail.js';
import { mailDomainRoutes } from './mail-domains.js';
import { openApiTransform } from './openapi.js';
import { mailCredentialRoutes } from './mail-credentials.js';
import { deviceRoutes } from './devices.js';
import { probeRoutes } from './probes.js';
import { recordRoutes } from './records.js';
import { stateRoutes } from './state.js';
import { proxyRoutes } from './routes.js';
import { statsRoutes } from './stats.js';
import type { HostStats } from '../proxy/stats.js';
import { routeBackends } from './routes-backends.js';
import { tokenRoutes } from './tokens.js';
import { viewRoutes } from './views.js';
import { zoneRoutes } from './zones.js';
import { certificateRoutes } from './certificates.js';

export interface ApiDeps {
  zones: readonly string[];
  nodeIp: string;
  /** This node's own addresses: an upstream dialling one needs an admin token (reach.ts). */
  ownAddresses: readonly string[];
  records: RecordStore;
  tokens: TokenStore;
  /** Split-horizon views (client networks → per-record values). */
  views: ViewStore;
  /** Everything a zone serves (SOA, synthesised NS/glue, user records), for export. */
  servedRecords: (zone: string) => ServedRecord[];
  /** What a zone serves that nobody stored (apex NS unless stored, glue in effect), cheap at any zone size. */
  synthesisedRecords: (zone: string) => ServedRecord[];
  health: () => HealthReport;
  version: string;
  routes: RouteStore;
  proxy: ProxyState;
  /** What the reconciler last applied to Caddy, and whether Caddy still runs it. */
  proxyStatus: () => { applied: DesiredProxy | null; caddyUp: boolean; inSync: boolean; lastError: string | null };
  /** Caddy's upstream pool now (backend-health.ts), or null when Caddy cannot say; absent: no Caddy (backend health not shown). */
  upstreamPool?: () => Promise<Map<string, UpstreamStatus> | null>;
  /** The backends of a route the controller took out after failed requests (src/proxy/recovery.ts): dial → mark; absent: none shown. */
  recovery?: (routeId: string) => ReadonlyMap<string, HealthDead>;
  /** Forgets the recovery watcher's mark of `dial` on a route (alive / dead by hand win) and lets the reconciler push; false: there was none. */
  recoveryClear?: (routeId: string, dial: string) => boolean;
  /** The explicit routes as the reconciler renders them (health marks, least_latency order); default proxy.split().explicit. */
  plannedRoutes?: () => readonly DesiredRoute[];
  /** Human-readable Caddyfile for a desired state. */
  caddyfile: (desired: DesiredProxy) => string;
  /** Runs writes in a rolled-back transaction (dry runs). */
  simulate: <T>(fn: () => T) => T;
  /** Runs a request's checks and writes in one transaction; the stores notify once it committed. */
  transaction: <T>(fn: () => T) => T;
  /**
   * transaction() for a request's write, committed together with the other writes of the same
   * event-loop turn (src/store/group.ts): resolves once the commit holding it is durable.
   */
  commit: <T>(fn: () => T) => Promise<T>;
  /** Resolves once every committed change has gone through the change pipeline (DNS published, reconciler told). */
  settled: () => Promise<void>;
  /** The mail relay's settings and queue (the relay itself is another process). */
  mail: {
    store: MailStore;
    messages: MessageStore;
    /** Mail-aware domains: the records our DNS publishes for them (src/mail/domains/domains.ts). */
    domains: MailDomains;
    /** The relay's host name (mail_hostname): MX target, MTA-STS policy mx. */
    hostname: string;
    /** Where our DNS server answers (for `mail domain check`). */
    dnsServer: () => { host: string; port: number };
    /** Mail account API keys as bearer tokens, and their rate limit (mail-account.ts). */
    keys: AccountKeys;
  };
  /** Tailnet devices (src/tailnet): `target_device`, `device:<name>` upstreams, GET /api/v1/devices. Absent: no tailnet. */
  devices?: TailnetDeps;
  /** The certificate store (src/certs): uploads, ACME certificates; keys never leave it through the API. */
  certificates: CertificateStore;
  /** The ACME DNS-01 issuer (src/certs/acme.ts); absent: orders are 503. */
  acme?: Pick<Dns01Issuer, 'check' | 'order'>;
  /** Per-host traffic from Caddy's access log (GET /api/v1/stats). Absent (setting `stats` off): the endpoints answer 409 feature_off. */
  stats?: HostStats;
  /** Takes a consistent copy of the database into a new owner-only file; the caller removes it. */
  backup: () => Promise<{ file: string; pages: number; restarts: number }>;
  /** Caddy's internal CA (`tls internal`), read through its admin API (GET /api/v1/ca). Absent: 503. */
  localCa?: () => Promise<LocalCaInfo>;
}

const requestLine = (req: FastifyRequest, route: string, status: number, seconds: number) => ({ req_id: req.id, method: req.method, route, url: req.url, status, ms: Math.round(seconds * 1e4) / 10 });

/** Largest request body: a 10,000-name zone file is ~0.5 MiB. */
const BODY_LIMIT = 16 * 1024 * 1024;

export async function build(deps: ApiDeps): Promise<FastifyInstance> {
  const log = logger('api');
  const app = Fastify({ logger: false, bodyLimit: BODY_LIMIT, genReqId: () => Math.random().toString(36).slice(2, 10), ...errorOptions(log) });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  installErrorHandling(app, log);
  installAuth(app, deps.tokens, deps.mail.keys);
  // While a zone import writes through its own connection (zone-import.ts), other writes wait
  // here, off the main thread's back: SQLite would block it until the import commits.
  app.addHook('preHandler', async (req) => {
    if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return;
    while (deps.records.busy) await deps.records.busy;
  });
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    const seconds = reply.elapsedTime / 1000;
    apiRequests.labels(route, req.method, String(reply.statusCode)).inc();
    apiLatency.labels(route, req.method).observe(seconds);
    // Writes and refusals at info; a successful read only at debug (as DNS queries are): at
    // 1,000 reads a second the line per read was ~8 % of the controller's time (bench/api).
    const read = req.method === 'GET' || req.method === 'HEAD';
    const probe = route === '/metrics' || route === '/health' || route === '/ready';
    if (reply.statusCode >= 400 || (!read && !probe)) log.info('request', requestLine(req, route, reply.statusCode, seconds));
    else if (!probe && log.isDebugEnabled()) log.debug('request', requestLine(req, route, reply.statusCode, seconds));
  });

  await app.register(swagger, {
    openapi: {
      info: { title: 'dnsproxy API', version: deps.version, description:
          'The dnsproxy controller: DNS records (and the original /add-record endpoints), split-horizon views, zones (import, export), reverse-proxy routes served by Caddy (plan, Caddyfile export), certificates (uploaded, or issued by ACME DNS-01 through our zones), API tokens, and the mail relay (accounts and API keys, providers, routing rules, DKIM, the queue, the STARTTLS certificate). Every route needs a bearer token except /health, /ready and /metrics.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: openApiTransform,
  });
  await app.register(swaggerUi, { routePrefix: DOCS_PREFIX });

  await app.register(probeRoutes(deps));
  await app.register(legacyRoutes(deps));
  await app.register(recordRoutes(deps));
  await app.register(zoneRoutes(deps));
  await app.register(tokenRoutes(deps));
  await app.register(viewRoutes(deps));
  await app.register(proxyRoutes(deps));
  await app.register(statsRoutes(deps));
  await app.register(routeBackends(deps));
  await app.register(mailRoutes(deps));
  await app.register(mailCredentialRoutes(deps));
  await app.register(mailDomainRoutes(deps));
  await app.register(backupRoutes(deps));
  await app.register(deviceRoutes(deps));
  await app.register(stateRoutes(deps));
  await app.register(caRoutes(deps));
  await app.register(certificateRoutes(deps));
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  await app.ready();
  return app;
}
