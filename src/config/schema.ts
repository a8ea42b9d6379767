// The controller's settings: one zod schema, fed by defaults < config file < env < CLI flags.
import { z } from 'zod';
import { LOG_LEVELS } from '../log/index.js';
import { absolute, nameProblem } from '../model/name.js';
import { isIP } from 'node:net';
import { mailDomain } from '../model/mail.js';
import { adminAddressProblem } from '../proxy/admin-address.js';
import { parseCidr } from '../model/cidr.js';
import { ACME_CHALLENGES } from '../proxy/acme.js';

const zoneName = z.string().superRefine((v, ctx) => {
  const problem = nameProblem(v);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
}).transform(absolute);

const portNumber = z.coerce.number().int('must be an integer').min(0, 'must be 0-65535').max(65535, 'must be 0-65535');
const ip = z.string().refine((v) => isIP(v) !== 0, 'must be an IP address');
const positive = z.coerce.number().int('must be an integer').positive('must be > 0');
/** A DNS server to ask: ip or ip:port ([v6]:port). */
const resolverAddress = z.string().regex(/^(?:\[[0-9a-fA-F:]+\]:\d+|[0-9.]+(?::\d+)?|[0-9a-fA-F:]+)$/, 'must be ip or ip:port');
const network = z.string().superRefine((v, ctx) => {
  const c = parseCidr(v);
  if ('error' in c) ctx.addIssue({ code: 'custom', message: c.error });
});

export const configSchema = z
  .object({
    data_dir: z.string().min(1).default('./data').describe('Directory for the SQLite database and generated files'),
    zones: z.array(zoneName).min(1, 'at least one zone is required').default(['home.arpa.']).describe('Zones we are authoritative for'),
    nameservers: z.array(zoneName).default([]).describe('Apex NS targets; default ns1.<zone> with glue to node_ip'),
    node_ip: z.string().refine((v) => isIP(v) === 4, 'must be an IPv4 address').optional().describe('This node\'s IP: A target of proxied records; default: Tailscale or first non-loopback IPv4'),
    listen_ip: z
      .union([ip, z.literal('tailnet')])
      .default('127.0.0.1')
      .describe('Address the DNS server, the API and Caddy\'s HTTP/HTTPS servers listen on (the mail relay too); `tailnet`: this node\'s Tailscale address (100.64.0.0/10), refused at start when there is none'),
    dns_port: portNumber.default(53),
    api_port: portNumber.default(8080),
    http_port: portNumber.default(80),
    https_port: portNumber.default(443),
    caddy_admin: z
      .string()
      .superRefine((v, ctx) => {
        const problem = adminAddressProblem(v);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .optional()
      .describe('Caddy admin API: unix/<absolute path> (default unix/<data_dir>/run/caddy-admin.sock, owner-only) or a loopback host:port such as 127.0.0.1:2019; anything else is refused'),
    caddy_spawn: z
      .union([z.boolean(), z.enum(['1', '0', 'true', 'false'])])
      .default(false)
      .transform((v) => v === true || v === '1' || v === 'true')
      .describe('Run Caddy as a child process (local runs); under supervisord Caddy is its own program'),
    tls_on_demand: z
      .enum(['internal', 'acme', 'off'])
      .default('internal')
      .describe('Plain proxied names with this tls mode get their certificate on demand, with no Caddy reload (the other mode stays explicit); off: every TLS name is explicit'),
    tls_ask_port: portNumber
      .default(0)
      .describe("Loopback port of the controller's on-demand certificate check (Caddy's ask) and HTTP->HTTPS redirect for plain TLS names; 0 = a free port at start (then a controller restart reloads Caddy once)"),
    acme_ca: z
      .string()
      .url('must be a URL')
      .refine((v) => v.startsWith('https://'), 'must be an https:// URL (RFC 8555: ACME runs over HTTPS)')
      .refine((v) => !/[\s{}]/.test(v), 'must not contain whitespace or braces (Caddy placeholders)')
      .optional()
      .describe("ACME directory URL of the CA that issues certificates for tls acme names (e.g. a private step-ca's); default: Let's Encrypt (Caddy's default)"),
    acme_ca_root: z
      .string()
      .refine((v) => v.startsWith('/'), 'must be an absolute path')
      .refine((v) => !/[\s{}]/.test(v), 'must not contain whitespace or braces')
      .optional()
      .describe("PEM file of the root(s) to trust when Caddy talks to acme_ca (a private CA whose HTTPS certificate the system does not trust); readable by Caddy; checked at start"),
    acme_email: z.email('must be an email address').optional().describe('Contact address of the ACME account (the CA may send expiry notices there)'),
    acme_challenges: z
      .array(z.enum(ACME_CHALLENGES))
      .min(1, 'at least one challenge type is required')
      .default([...ACME_CHALLENGES])
      .describe('ACME challenges Caddy may solve: http-01 (the CA connects to http_port) and/or tls-alpn-01 (to https_port); both by default'),
    stats: z
      .union([z.boolean(), z.enum(['on', 'off', '1', '0', 'true', 'false'])])
      .default(false)
      .transform((v) => v === true || v === 'on' || v === '1' || v === 'true')
      .describe("Per-host stats (GET /api/v1/stats): Caddy sends its access log to the controller. Off by default: in Caddy 2.6.2 the access log costs about a quarter of the proxy's throughput at saturation (bench/proxy)"),
    stats_port: portNumber
      .default(0)
      .describe("Loopback port where the controller receives Caddy's access log for per-host stats (GET /api/v1/stats); 0 = a free port at start (then a controller restart reloads Caddy once)"),
    cert_grace_ms: positive.default(60_000).describe('How long a TLS host may be without a certificate (ACME issuance under way) before its route shows error; probed by a TLS handshake every 30 s'),
    upstreams: z.array(resolverAddress).default([]).describe('Resolvers for names outside our zones; empty = REFUSED'),
    axfr_allow: z.array(ip).default(['127.0.0.1', '::1']).describe('Addresses allowed to AXFR'),
    recursion_allow: z
      .array(network)
      .optional()
      .describe('Client networks (IPs or CIDRs) whose queries for names outside our zones are forwarded to upstreams; others get REFUSED for them. Default: loopback, the tailnet (100.64.0.0/10, fd7a:115c:a1e0::/48) and the networks of listen_ip'),
    log_level: z.enum(LOG_LEVELS).default('info'),
    // Tailnet (src/tailnet): devices by name, and who may use the proxy.
    tailscale_socket: z.string().min(1).default('/var/run/tailscale/tailscaled.sock').describe('tailscaled\'s LocalAPI socket, asked for the device list (GET /localapi/v0/status)'),
    tailscale_cli: z.string().regex(/^[A-Za-z0-9_./-]{1,255}$/, 'must be a program name or path').optional().describe('Read the device list with `<this> status --json` instead of the LocalAPI socket (e.g. tailscale)'),
    device_poll_ms: positive.default(10_000).describe('How often the device list is read; records and routes naming a device follow it within one poll'),
    tailnet_only: z
      .union([z.boolean(), z.enum(['auto', 'on', 'off', '1', '0', 'true', 'false'])])
      .default('auto')
      .transform((v) => (v === 'auto' ? 'auto' : v === true || v === 'on' || v === '1' || v === 'true' ? 'on' : 'off'))
      .describe('Caddy answers 403 to clients outside tailnet_ranges (before any route); auto: on when this node has a Tailscale address'),
    tailnet_ranges: z.array(network).min(1, 'at least one network is required').default(['100.64.0.0/10', 'fd7a:115c:a1e0::/48', '127.0.0.0/8', '::1/128']).describe('Client networks Caddy proxies for when tailnet_only is on: the tailnet\'s ranges and this node\'s loopback'),
    state_file: z.string().min(1).optional().describe('A state file (dnsproxy export) applied at start and again on every save; a refused version leaves the last good state serving (shown in /health as state_file)'),
    state_prune: z
      .union([z.boolean(), z.enum(['1', '0', 'true', 'false'])])
      .default(false)
      .transform((v) => v === true || v === '1' || v === 'true')
      .describe('With state_file: also remove what the file lacks (record sets, routes, mail domains, accounts, providers, rules)'),
    // Mail relay (`dnsproxy mail serve`).
    smtp_port: portNumber.default(25).describe('Mail relay: SMTP listener (authenticated submission as on the submission port, and inbound mail for mail_domains without AUTH)'),
    submission_port: portNumber.default(587).describe('Mail relay: submission listener (STARTTLS + AUTH)'),
    // Empty (an env var, a bare `smtps_port:` in YAML) is "none", never port 0 (an ephemeral port).
    smtps_port: z
      .preprocess((v) => (v === '' || v === null ? undefined : v), portNumber.optional())
      .describe('Mail relay: submission over implicit TLS (RFC 8314, usually 465): TLS from the first byte, then AUTH as on the submission port; unset = no such listener'),
    mail_metrics_port: z
      .preprocess((v) => (v === '' || v === null ? undefined : v), portNumber.optional())
      .describe('Mail relay: port of its own Prometheus endpoint (/metrics on listen_ip: connections, sessions, messages accepted/refused by reason, AUTH results); unset = none'),
    mail_domains: z
      .array(mailDomain)
      .max(1000)
      .default([])
      .describe('Mail relay: domains we receive mail for on the SMTP port without AUTH (we are their MX), SPF/DKIM/DMARC-checked and routed by the rules naming them; empty = the SMTP port takes no mail without AUTH (550 5.7.1 for every recipient)'),
    mail_dns_servers: z
      .array(resolverAddress)
      .default([])
      .describe('Mail relay: DNS servers for its lookups (the SPF/DKIM/DMARC checks of inbound mail, the MX lookups of mx providers), ip or ip:port; our own DNS server only with upstreams set (it answers nothing else: mail serve refuses it otherwise); empty = the system\'s (/etc/resolv.conf), or for mx providers our own DNS server then upstreams when upstreams are set'),
    mail_hostname: z.string().regex(/^[A-Za-z0-9.-]{1,253}$/, 'must be a host name').optional().describe('Mail relay: name in the greeting, EHLO and the self-signed certificate; default: this host\'s name'),
    mail_max_size: positive.default(25 * 1024 * 1024).describe('Mail relay: largest message accepted, bytes (advertised as SIZE)'),
    mail_max_clients: positive.default(100).describe('Mail relay: concurrent SMTP connections; more get 421'),
    mail_max_clients_per_ip: z.coerce.number().int('must be an integer').min(0, 'must be >= 0').default(10).describe('Mail relay: SMTP sessions one client address may have open at once (all listeners together); more get 421 4.7.0 at connect; 0 = no limit'),
    mail_max_data_in_flight: positive.default(64 * 1024 * 1024).describe('Mail relay: bytes of message data all sessions together may hold in memory while receiving (DATA not yet committed); a message that does not fit gets 452 4.3.1 (the client retries); at least mail_max_size'),
    mail_workers: positive.default(4).describe('Mail relay: deliveries in flight at once'),
    mail_retry_base_ms: positive.default(60_000).describe('Mail relay: first retry delay; doubles per attempt up to mail_retry_max_ms'),
    mail_retry_max_ms: positive.default(3_600_000),
    mail_give_up_ms: positive.default(2 * 24 * 3_600_000).describe('Mail relay: a message still undelivered this long after acceptance fails'),
    api_key_requests_per_minute: z.coerce.number().int('must be an integer').min(0, 'must be >= 0').default(100).describe('API: requests a minute one mail account API key may make as a bearer token (a burst of this many, then evenly); more get 429 with Retry-After; 0 = no limit'),
    mail_mta_sts_tls: z
      .enum(['internal', 'acme'])
      .default('internal')
      .describe("Mail domains: the certificate Caddy serves https://mta-sts.<domain>/.well-known/mta-sts.txt with: internal (Caddy's local CA, works offline; senders do not trust it) or acme (a public CA; the name must be reachable from the internet)"),
    mail_retention_days: z.coerce.number().int('must be an integer').min(0, 'must be >= 0').default(30).describe('Mail relay: delivered, bounced and failed messages queued longer ago than this are deleted with their delivery logs (checked every minute); 0 = keep forever'),
    mail_account_messages_per_hour: z.coerce.number().int('must be an integer').min(0, 'must be >= 0').default(3600).describe('Mail relay: messages one account may submit per hour (a burst of this many, then one per 3600/N s); more get 451 4.7.0; 0 = no limit'),
    mail_ip_connections_per_minute: z.coerce.number().int('must be an integer').min(0, 'must be >= 0').default(600).describe('Mail relay: connections one client address may open per minute (a burst of this many, then evenly); more get 421 4.7.0; 0 = no limit'),
    mail_tls_cert: z.string().min(1).optional().describe('Mail relay: PEM certificate for STARTTLS; default: self-signed, generated into <data_dir>/mail/tls'),
    mail_tls_key: z.string().min(1).optional(),
  })
  .strict()
  .refine((c) => (c.mail_tls_cert === undefined) === (c.mail_tls_key === undefined), { path: ['mail_tls_key'], message: 'mail_tls_cert and mail_tls_key go together' })
  .refine((c) => c.mail_max_data_in_flight >= c.mail_max_size, { path: ['mail_max_data_in_flight'], message: 'must be at least mail_max_size (a message of the largest size must fit)' });

/** The loaded config: node_ip detected, caddy_admin and recursion_allow defaulted when not set. */
export type Config = z.infer<typeof configSchema> & {
  node_ip: string;
  caddy_admin: string;
  recursion_allow: string[];
  /** This node's Tailscale address (100.64.0.0/10) when it has one (loadConfig detects it). */
  tailnet_ip?: string | null;
};

/** Whether Caddy refuses clients outside tailnet_ranges: `on`, or `auto` with a Tailscale address on this node. */
export function tailnetOnly(c: Pick<Config, 'tailnet_only' | 'tailnet_ip'>): boolean {
  return c.tailnet_only === 'on' || (c.tailnet_only === 'auto' && Boolean(c.tailnet_ip));
}

/** Settings that may come from the environment as DNSPROXY_<UPPER_NAME>; lists are comma-separated. */
export const CONFIG_KEYS = Object.keys(configSchema.shape) as (keyof typeof configSchema.shape)[];
export const LIST_KEYS: ReadonlySet<string> = new Set(['zones', 'nameservers', 'upstreams', 'axfr_allow', 'recursion_allow', 'mail_domains', 'mail_dns_servers', 'tailnet_ranges', 'acme_challenges']);
