// The mail relay's model: accounts, providers, routing rules, queued messages and their delivery
// log. One zod schema per thing, used for API/CLI input and for DB rows on read.
import { isIP } from 'node:net';
import { z } from 'zod';

/** A domain as MAIL FROM / RCPT TO carry it: lower-case, no trailing dot. */
export const mailDomain = z
  .string()
  .max(253)
  .regex(/^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$/, 'must be a domain name')
  .transform((v) => v.toLowerCase().replace(/\.$/, ''));

/** Account and provider names: short, safe in a URL path and a log line. */
export const mailName = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'must be 1-64 of a-z 0-9 . _ - starting with a letter or digit');

export const email = z.string().max(254).regex(/^[^\s@<>]+@[^\s@<>]+$/, 'must be an email address').transform((v) => v.toLowerCase());

/** The domain part of an address, lower-case ('' when there is none). */
export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1).toLowerCase().replace(/\.$/, '');
}

// ---- accounts -----------------------------------------------------------------------------

export const accountInput = z
  .object({
    name: mailName.describe('SMTP username (the email works too)'),
    email: email.describe('Contact address of the account'),
    password: z.string().min(8, 'at least 8 characters').max(1024),
    allowed_domains: z.array(mailDomain).min(1, 'at least one domain').max(100).describe('Domains MAIL FROM may use'),
  })
  .strict();
export type AccountInput = z.infer<typeof accountInput>;

/** PUT /api/v1/mail/accounts/{name}: the fields to change (a password change, new domains, a new email). */
export const accountUpdate = accountInput
  .omit({ name: true })
  .partial()
  .strict()
  .refine((u) => Object.keys(u).length > 0, 'give at least one of email, password, allowed_domains');
export type AccountUpdate = z.infer<typeof accountUpdate>;

export interface Account {
  name: string;
  email: string;
  allowed_domains: string[];
  created_at: string;
  updated_at: string;
}

// ---- providers ----------------------------------------------------------------------------

/**
 * true lets the relay connect to this provider at this host's own, loopback, link-local or
 * metadata addresses (destination.ts); absent or false refuses them, when the provider is saved
 * (an IP literal) and at every delivery (what its name resolves to).
 */
const allowPrivate = z.boolean().optional().describe('Allow connecting to loopback, link-local, metadata and this node\'s own addresses (default: refused)');

/** `tls`: TLS from the first byte (465); `starttls`: STARTTLS required; `none`: plain (LAN smarthost). */
export const SMTP_SECURITY = ['tls', 'starttls', 'none'] as const;

export const smtpProvider = z
  .object({
    type: z.literal('smtp'),
    host: z.string().min(1).max(253).regex(/^[A-Za-z0-9.:[\]-]+$/, 'must be a host name or IP'),
    port: z.coerce.number().int().min(1).max(65535),
    security: z.enum(SMTP_SECURITY).default('starttls'),
    /** false accepts any certificate (self-signed LAN relay); the default verifies it. */
    tls_verify: z.boolean().default(true),
    auth: z.object({ user: z.string().min(1).max(256), pass: z.string().min(1).max(1024) }).strict().optional(),
    /** Connections the pooled transport opens to this provider at most (sends beyond wait for one); the relay's workers cap the total. */
    max_connections: z.coerce.number().int().min(1).max(50).default(2),
    allow_private: allowPrivate,
  })
  .strict();

/** Direct delivery: the recipient domain's MX hosts (src/mail/delivery/mx.ts), looked up through our resolver. */
export const mxProvider = z
  .object({
    type: z.literal('mx'),
    /** 25 on the internet; another port only for tests and LAN setups (every MX host is dialled on it). */
    port: z.coerce.number().int().min(1).max(65535).default(25),
    /** MX hosts that resolve to loopback, link-local, metadata or this node's own addresses are skipped unless set (destination.ts). */
    allow_private: allowPrivate,
  })
  .strict();

/**
 * Request bodies an `http` provider can send (src/mail/delivery/http.ts):
 *   sendgrid  SendGrid v3 /v3/mail/send JSON (the message rebuilt from its MIME parts)
 *   postmark  Postmark /email JSON (the message rebuilt from its MIME parts)
 *   mailgun   Mailgun /v3/<domain>/messages.mime: multipart form, the message as accepted
 *   raw       {"from","to":[…],"raw":"<base64 MIME>"}: the message as accepted, for gateways of your own
 */
export const HTTP_FORMATS = ['sendgrid', 'postmark', 'mailgun', 'raw'] as const;
export type HttpFormat = (typeof HTTP_FORMATS)[number];

const apiSecret = z.string().min(1).max(4096).regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces');

/** How an `http` provider authenticates: `Authorization: Bearer`, `Authorization: Basic`, or a header of its own (Postmark). */
export const httpAuth = z.discriminatedUnion('scheme', [
  z.object({ scheme: z.literal('bearer'), token: apiSecret }).strict(),
  z.object({ scheme: z.literal('basic'), user: z.string().min(1).max(256).regex(/^[^:\r\n]+$/, 'must not contain ":" or line breaks'), pass: apiSecret }).strict(),
  z.object({ scheme: z.literal('header'), name: z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'must be a header name'), value: apiSecret }).strict(),
]);
export type HttpAuth = z.infer<typeof httpAuth>;

export const httpProvider = z
  .object({
    type: z.literal('http'),
    format: z.enum(HTTP_FORMATS),
    url: z
      .string()
      .max(2048)
      .refine((v) => URL.canParse(v) && /^https?:$/.test(new URL(v).protocol) && !new URL(v).username && !new URL(v).password, 'must be an http:// or https:// URL without credentials (put them in auth)'),
    auth: httpAuth.optional(),
    allow_private: allowPrivate,
  })
  .strict();

/**
 * The auth each API format uses where a body leaves it out (the vendors' documented schemes):
 * an `http` provider's `auth` without `scheme` gets the format's, a `basic` one without `user` its
 * user, a `header` one without `name` its header. The API and the CLI fill in the same.
 */
export const HTTP_AUTH_DEFAULTS: Readonly<Record<HttpFormat, { scheme: HttpAuth['scheme'] | 'none'; user?: string; name?: string }>> = {
  sendgrid: { scheme: 'bearer' },
  mailgun: { scheme: 'basic', user: 'api' },
  postmark: { scheme: 'header', name: 'X-Postmark-Server-Token' },
  raw: { scheme: 'none' },
};

/** `v` (an `http` provider's config as sent) with HTTP_AUTH_DEFAULTS filled into its `auth`; anything else as it is. */
export function withAuthDefaults(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  const c = v as Record<string, unknown>;
  if (c.type !== 'http' || c.auth === null || typeof c.auth !== 'object' || Array.isArray(c.auth)) return v;
  const d = (HTTP_AUTH_DEFAULTS as Record<string, (typeof HTTP_AUTH_DEFAULTS)[HttpFormat] | undefined>)[String(c.format)];
  const a = c.auth as Record<string, unknown>;
  const scheme = a.scheme ?? (d && d.scheme !== 'none' ? d.scheme : undefined);
  if (scheme === undefined) return v; // the schema names the missing scheme
  const user = scheme === 'basic' && a.user === undefined && d?.user ? { user: d.user } : {};
  const name = scheme === 'header' && a.name === undefined && d?.name ? { name: d.name } : {};
  return { ...c, auth: { ...a, scheme, ...user, ...name } };
}

export const providerConfig = z.preprocess(withAuthDefaults, z.discriminatedUnion('type', [smtpProvider, mxProvider, httpProvider]));
export type ProviderConfig = z.infer<typeof providerConfig>;
export type SmtpProviderConfig = z.infer<typeof smtpProvider>;
export type MxProviderConfig = z.infer<typeof mxProvider>;
export type HttpProviderConfig = z.infer<typeof httpProvider>;

/** A provider's config as the API and CLI show it: every secret (passwords, tokens, header values) left out. */
export function publicConfig(c: ProviderConfig): Record<string, unknown> {
  if (c.type === 'smtp') return { ...c, ...(c.auth ? { auth: { user: c.auth.user } } : {}) };
  if (c.type === 'http' && c.auth) {
    const { auth, ...rest } = c;
    return { ...rest, auth: auth.scheme === 'basic' ? { scheme: 'basic', user: auth.user } : auth.scheme === 'header' ? { scheme: 'header', name: auth.name } : { scheme: 'bearer' } };
  }
  return { ...c };
}

export const providerInput = z.object({ name: mailName, config: providerConfig }).strict();

export interface Provider {
  name: string;
  config: ProviderConfig;
}

/** A provider as the API shows it (publicConfig: no secrets). */
export interface ProviderView {
  name: string;
  config:
    | Omit<SmtpProviderConfig, 'auth'> & { auth?: { user: string } }
    | MxProviderConfig
    | (Omit<HttpProviderConfig, 'auth'> & { auth?: { scheme: HttpAuth['scheme']; user?: string; name?: string } });
}

// ---- routing rules ------------------------------------------------------------------------

export const ruleInput = z
  .object({
    priority: z.coerce.number().int().min(0).max(1_000_000).default(100).describe('Lower is tried first'),
    sender_domain: mailDomain.nullable().default(null).describe('Match MAIL FROM domain; null = any'),
    recipient_domain: mailDomain.nullable().default(null).describe('Match recipient domain; null = any'),
    account: mailName.nullable().default(null).describe('Match the authenticated account; null = any'),
    provider: mailName,
    fallback_provider: mailName.nullable().default(null).describe('Used when the provider keeps failing'),
  })
  .strict();
export type RuleInput = z.infer<typeof ruleInput>;
export type Rule = RuleInput & { id: string };

// ---- messages -----------------------------------------------------------------------------

export const MESSAGE_STATUSES = ['queued', 'sending', 'deferred', 'delivered', 'bounced', 'failed', 'held'] as const;
export type MessageStatus = (typeof MESSAGE_STATUSES)[number];
/** Statuses a message never leaves. */
export const FINAL_STATUSES: ReadonlySet<MessageStatus> = new Set(['delivered', 'bounced', 'failed']);

/** How a message came in: an account's submission (AUTH), or mail for a domain we host (the SMTP port without AUTH; account ''). */
export const MESSAGE_SOURCES = ['submission', 'inbound'] as const;
export type MessageSource = (typeof MESSAGE_SOURCES)[number];

export const messageRow = z.object({
  id: z.string(),
  body_id: z.string().nullable(),
  account: z.string(),
  mail_from: z.string(),
  rcpt_to: z.string().transform((v) => z.array(z.string()).parse(JSON.parse(v))),
  recipient_domain: z.string(),
  size: z.number().int(),
  status: z.enum(MESSAGE_STATUSES),
  attempts: z.number().int(),
  created_at_ms: z.number().int(),
  next_attempt_at: z.number().int(),
  lease_until: z.number().int().nullable(),
  lease_owner: z.string().nullable(),
  provider: z.string().nullable(),
  last_error: z.string().nullable(),
  updated_at_ms: z.number().int(),
  /** The message this one was split from (its provider refused some recipients), or for a DSN (mail_from '') the one it reports on. */
  parent_id: z.string().nullable(),
  source: z.enum(MESSAGE_SOURCES),
});
export type Message = z.infer<typeof messageRow>;

export const ATTEMPT_OUTCOMES = ['delivered', 'transient', 'permanent'] as const;
export type AttemptOutcome = (typeof ATTEMPT_OUTCOMES)[number];

/** One provider reply about one recipient. */
export interface RecipientReply {
  rcpt: string;
  code: number | null;
  response: string;
}

/** One delivery attempt, as the delivery log stores it. */
export interface Attempt {
  provider: string | null;
  outcome: AttemptOutcome;
  /** SMTP reply code, null when there was none (connection refused, timeout). */
  code: number | null;
  response: string;
  duration_ms: number;
  /**
   * Recipients the provider refused at RCPT TO, each with its own reply, when the replies differed
   * per recipient (not stored in the log row: policy.ts settle() splits the message by them).
   */
  refused?: RecipientReply[];
  /**
   * How long the provider asked us to wait before trying again (an HTTP API's Retry-After on a
   * transient reply). The next attempt comes no sooner (policy.ts afterAttempt()); not stored.
   */
  retry_after_ms?: number;
}

export interface Delivery extends Attempt {
  id: number;
  message_id: string;
  at_ms: number;
}

// ---- account API keys and the STARTTLS certificate --------------------------------------

const DURATION_UNITS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
/** Longest grace or lifetime a duration may give: a year (longer is "until revoked": leave it out). */
const MAX_DURATION_MS = 366 * 86_400_000;

/** `90s`, `30m`, `24h`, `7d` or `0`, as milliseconds. */
export const duration = z
  .string()
  .regex(/^(0|\d{1,6}[smhd])$/, 'must be a number with s, m, h or d (e.g. 30m, 24h, 7d), or 0')
  .transform((v) => (v === '0' ? 0 : Number(v.slice(0, -1)) * DURATION_UNITS[v.slice(-1) as keyof typeof DURATION_UNITS]))
  .refine((ms) => ms <= MAX_DURATION_MS, 'must be at most 366d');

const keyLabel = z.string().min(1).max(64).regex(/^[\x20-\x7e]+$/, 'must be printable ASCII');

export const keyInput = z
  .object({
    label: keyLabel.default('key').describe('What the key is for (shown in lists)'),
    expires_in: duration.optional().describe('The key stops working after this (e.g. 90d); default: until revoked'),
  })
  .strict();
export type KeyInput = z.infer<typeof keyInput>;

export const rotateInput = z
  .object({
    label: keyLabel.optional().describe('Label of the new key; default: rotated <date>'),
    keep_old: duration.default(0).describe('How long the old keys keep working (e.g. 24h); 0 revokes them now'),
  })
  .strict();
export type RotateInput = z.infer<typeof rotateInput>;

/** A key as lists show it: never the key, never its hash. */
export interface KeyInfo {
  id: string;
  account: string;
  label: string;
  created_at: string;
  last_used_at: string | null;
  expires_at: string | null;
  /** Set once the key is revoked (revoke, or rotation without keep_old); it stays listed. */
  revoked_at: string | null;
  state: 'active' | 'expiring' | 'expired' | 'revoked';
}

/** A certificate as the API describes it (src/mail/credentials/certcheck.ts). */
export interface CertInfo {
  /** Leaf subject, one `KEY=value` per line as OpenSSL prints it, joined with ", ". */
  subject: string;
  issuer: string;
  /** subjectAltName entries (`DNS:relay.example.net`, `IP Address:192.0.2.1`). */
  names: string[];
  not_before: string;
  not_after: string;
  /** SHA-256 of the leaf's DER, `AB:CD:…` — what `openssl x509 -fingerprint -sha256` and node:tls print. */
  fingerprint_sha256: string;
  serial: string;
  self_signed: boolean;
  expired: boolean;
  /** Certificates in the PEM (leaf + intermediates). */
  chain_length: number;
}

export const certInput = z
  .object({
    cert: z.string().min(1).max(64 * 1024).describe('PEM certificate chain, leaf first'),
    key: z.string().min(1).max(16 * 1024).describe('PEM private key of the leaf (unencrypted)'),
  })
  .strict();

// ---- mail-aware domains (src/mail/domains) --------------------------------------------------

/** The selector a domain's first DKIM key gets. */
export const DEFAULT_SELECTOR = 'dnsproxy';

export const dkimSelector = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be a DNS label (lower case)');

/** MTA-STS policy max_age (RFC 8461 §3.2): a week, the RFC's suggestion for a stable policy. */
export const MTA_STS_MAX_AGE = 604_800;

/** The settings a mail-aware domain keeps (API body, stored as JSON). */
export const mailDomainSettings = z
  .object({
    dmarc_policy: z.enum(['none', 'quarantine', 'reject']).default('none').describe('DMARC p=: none (monitor, the default), quarantine or reject'),
    dmarc_rua: z.email().optional().describe('Where DMARC aggregate reports go (rua=mailto:)'),
    tls_rpt_rua: z.email().optional().describe('Where TLS-RPT reports go; default postmaster@<domain>'),
    mta_sts_mode: z.enum(['testing', 'enforce', 'none']).default('testing').describe('MTA-STS policy mode (RFC 8461); testing by default'),
    spf_all: z.enum(['~all', '-all', '?all']).default('~all').describe('What SPF says of other senders: ~all (softfail, default), -all (fail), ?all'),
    spf_include: z.array(z.string().regex(/^[A-Za-z0-9_.-]{1,253}$/, 'must be a domain name')).max(5).default([]).describe('Extra SPF include: domains (a provider whose senders we do not know)'),
    spf_addresses: z
      .array(z.string().refine((v) => isIP(v) !== 0, 'must be an IP address'))
      .max(10)
      .optional()
      .describe("Addresses SPF names as this relay's; default node_ip"),
    selector: dkimSelector.default(DEFAULT_SELECTOR).describe("The DKIM selector of the domain's first key"),
  })
  .strict();
export type MailDomainSettings = z.infer<typeof mailDomainSettings>;

/** A DKIM key published but not (or no longer) signing: a new one before its time, an old one in its grace period. */
export interface PublishedSelector {
  selector: string;
  /** Unix ms: the new key signs from then (pending) / the old key's record goes then (retired). */
  at_ms: number;
  state: 'pending' | 'retired';
}

export interface MailDomain {
  domain: string;
  zone: string;
  settings: MailDomainSettings;
  created_at: string;
  updated_at: string;
}

/** A mail domain as the API shows it. */
export interface MailDomainView extends MailDomain {
  dkim: { signing: string | null; published: PublishedSelector[] };
  /** The policy served at https://mta-sts.<domain>/.well-known/mta-sts.txt; null in mode none. */
  mta_sts_policy: string | null;
}
