// Hostile input, table-driven: for every operation the app serves (read from its own OpenAPI
// document), every field of every body variant, every path and query parameter gets a list of
// nasty values. Each answer must be a success or a refusal in the catalog shape (400; 404/409 only
// where the refusal is about state, never the value) - never a 500 - and afterwards every view
// (records, routes, plan, the real Caddyfile export and Caddy render, both zone exports, the mail
// lists) must still answer.
import { expect } from 'chai';
import type { InjectOptions } from 'fastify';
import { once } from 'node:events';
import { ERRORS } from '../../src/errors.js';
import { selfSignedCert } from '../../src/mail/credentials/cert.js';
import { caddyfileExport } from '../../src/proxy/caddyfile.js';
import { render } from '../../src/proxy/render.js';
import { localApiSource } from '../../src/tailnet/source.js';
import { apiFixture, type ApiFixture } from '../helpers/api.js';
import { ManualTimers, startFakeLocalApi, type FakeLocalApi } from '../helpers/tailscale.js';

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';
interface Req {
  params?: Record<string, string>;
  query?: Record<string, string>;
  body?: unknown;
  /** A text/plain body (zone import). */
  text?: string;
}
interface Setup {
  routeId: string;
  cert: { cert: string; key: string };
}

const LONG = 'x'.repeat(100_000);
/** What an attacker or a broken script sends: the values each field, parameter and zone-file slot gets. */
const NASTY: [string, unknown][] = [
  ['empty', ''],
  ['//', '//'],
  ['/./', '/./'],
  ['..', '..'],
  ['path traversal', '../../etc/passwd'],
  ['NUL', 'a\u0000b'],
  ['CR/LF', 'a\r\nX-Injected: 1'],
  ['newline block', 'a.home.arpa {\n\trespond 200\n}'],
  ['Caddy placeholder', '{http.request.host}'],
  ['env placeholder', '{$HOME}'],
  ['handlebars', '{{handlebars}}'],
  ['handlebars triple', '{{{constructor}}}'],
  ['64-char label', `${'a'.repeat(64)}.home.arpa`],
  ['Caddy admin listener', '127.0.0.1:2019'],
  ['API listener', '127.0.0.1:8080'],
  ['IPv6 loopback', '[::1]:2019'],
  ['IPv6 zone id', 'fe80::1%eth0'],
  ['short-form IPv4', '127.1'],
  ['unicode name', 'ünïcödé.home.arpa'],
  ['emoji', '😀'],
  ['RTL override', '\u202egnp.exe'],
  ['quotes', `"'\``],
  ['backslash', '\\'],
  ['percent', '%00%zz'],
  ['semicolon', 'a;b'],
  ['very long', LONG],
  ['long label', 'a'.repeat(300)],
  ['zero', 0],
  ['negative', -1],
  ['huge', 1e308],
  ['fraction', 1.5],
  ['true', true],
  ['null', null],
  ['array', ['a']],
  ['empty array', []],
  ['nested array', [[[]]]],
  ['object', { a: 1 }],
];
const STRINGS = NASTY.filter((v): v is [string, string] => typeof v[1] === 'string');

/** Answers that refuse because of state (the thing is not there, or already is), not because of the value. */
const STATE_REFUSALS = new Set([404, 409]);
/**
 * Refusals besides 400: state, a path segment over the length limit (414), and a method the path
 * does not take (405: `by-host/../backends` is normalised onto `/api/v1/routes/{id}`).
 */
const REFUSALS = new Set([400, 405, 414, ...STATE_REFUSALS]);

const RECORDS = (n: number) => [
  { name: `a${n}`, type: 'A', ttl: 60, service_name: `s${n}`, values: ['192.0.2.1'], proxy: { enabled: true, upstreams: ['192.0.2.50:8080'], tls: 'internal', balancing: { policy: 'random', try_duration: '2s', retries: 1 }, backends: { '192.0.2.50:8080': { weight: 2, dead: false } }, health: { passive: { max_fails: 2, fail_duration: '10s', unhealthy_status: [502, 503], unhealthy_latency: '2s' }, active: { path: '/healthz', interval: '5s', timeout: '1s', expected_status: 200 }, recovery_interval: '30s' } }, views: { lan: { values: ['192.168.1.1'] } } },
  { name: `aaaa${n}`, type: 'AAAA', ttl: 60, values: ['2001:db8::1'], proxy: { enabled: false, upstreams: ['[2001:db8::5]:80'], tls: 'off' }, views: { lan: { values: ['fd00::1'] } } },
  { name: `cname${n}`, type: 'CNAME', values: ['target.home.arpa'] },
  { name: `txt${n}`, type: 'TXT', values: ['v=spf1 -all', 'second', ['key=one', 'key=two', { hex: '00ff' }]] },
  { name: `mx${n}`, type: 'MX', values: [{ preference: 10, exchange: 'mail.home.arpa' }] },
  { name: `_srv${n}._tcp.home.arpa`, type: 'SRV', values: [{ priority: 10, weight: 5, port: 5060, target: 'sip.home.arpa' }] },
  { name: `${n}.2.0.192.in-addr.arpa.lab.example`, type: 'PTR', values: ['www.home.arpa'] },
  { name: `caa${n}`, type: 'CAA', values: [{ flags: 0, tag: 'issue', value: 'letsencrypt.org' }] },
  { name: `ns${n}`, type: 'NS', values: ['ns.sub.home.arpa'] },
];
/** A record set bound to a tailnet device (the fake tailnet's laptop): the device gives its values. */
const DEVICE_RECORD = (n: number) => ({ name: `dev${n}`, type: 'AAAA', ttl: 60, target_device: 'laptop', proxy: { enabled: true, upstreams: ['device:laptop:8080'], tls: 'internal' } });
const PROVIDERS = [
  { type: 'smtp', host: 'smtp.example.net', port: 587, security: 'starttls', tls_verify: true, auth: { user: 'relay', pass: 'secret' }, max_connections: 2, allow_private: false },
  { type: 'mx', port: 25 },
  { type: 'http', format: 'sendgrid', url: 'https://api.example.net/v3/mail/send', auth: { scheme: 'bearer', token: 'tok' }, allow_private: false },
  { type: 'http', format: 'mailgun', url: 'https://api.example.net/v3/x/messages.mime', auth: { scheme: 'basic', user: 'api', pass: 'key' } },
  { type: 'http', format: 'postmark', url: 'https://api.example.net/email', auth: { scheme: 'header', name: 'X-Postmark-Server-Token', value: 'tok' } },
];
const dry = { dry_run: 'false' };

/**
 * A state document with every section (src/state), its names fixed so that applying it again is no
 * change: each nasty value then changes one field of an otherwise settled state.
 */
const STATE_DOC = {
  version: 1,
  zones: [{ name: 'home.arpa.', soa: { mname: 'ns.example.com.', rname: 'admin.example.com.', refresh: 1800, retry: 900, expire: 1209600, minimum: 120, ttl: 7200 } }],
  views: [{ name: 'lan', cidrs: ['192.168.1.0/24', 'fd00:1::/64'] }],
  records: [
    { name: 'st.home.arpa.', type: 'A', ttl: 60, service_name: 'st', values: ['192.0.2.1'], proxy: { enabled: true, upstreams: ['192.0.2.50:8080'], tls: 'internal' }, views: { lan: { values: ['192.168.1.1'] } } },
    { name: 'st.home.arpa.', type: 'TXT', values: ['hello', ['a=b', { hex: '00ff' }]] },
    { name: 'mx.lab.example.', type: 'MX', values: [{ preference: 10, exchange: 'mail.lab.example.' }] },
    { name: 'dev.home.arpa.', type: 'AAAA', ttl: 60, target_device: 'laptop' },
  ],
  routes: [{ id: 'api:st', hosts: ['rt.home.arpa'], path: '/app', upstreams: ['192.0.2.5:80', 'device:laptop:8080'], tls: 'off', health_path: '/healthz' }],
  certificates: [],
  mail: {
    domains: [{ domain: 'lab.example', settings: { dmarc_policy: 'quarantine', mta_sts_mode: 'testing', spf_include: ['spf.example.net'] } }],
    accounts: [{ name: 'acct', email: 'acct@example.com', password: 'correct horse battery', allowed_domains: ['example.com'] }],
    providers: [
      { name: 'prov', config: { type: 'mx' } },
      { name: 'relay', config: { type: 'smtp', host: 'smtp.example.net', port: 587, auth: { user: 'relay', pass: 'secret' } } },
    ],
    rules: [{ priority: 10, sender_domain: 'example.com', recipient_domain: 'example.org', account: 'acct', provider: 'relay', fallback_provider: 'prov' }],
  },
};

/** A valid request per operation (`n` makes names unique), every optional field and variant included. */
const BASE: Record<string, (n: number, s: Setup) => Req[]> = {
  'POST /add-record': (n) => [
    { query: dry, body: { service_name: `s${n}`, name: `h${n}`, ip: '192.0.2.1', port: 8080, forward_to_ip: '192.0.2.2', proxy_enabled: true, ttl: 60, balancing: { policy: 'least_conn', try_duration: '2s', retries: 1 }, health: { passive: { max_fails: 2, fail_duration: '10s', unhealthy_status: [502, 503], unhealthy_latency: '2s' }, active: { path: '/healthz', interval: '5s', timeout: '1s', expected_status: 200 }, recovery_interval: '30s' } } },
    { query: dry, body: { service_name: `d${n}`, name: `d${n}`, target_device: 'laptop', port: 8080, proxy_enabled: true, ttl: 60 } },
  ],
  'DELETE /remove-record': (n) => [{ query: dry, body: { name: `h${n}` } }, { query: { ...dry, name: `h${n}` } }],
  'GET /api/v1/records': (n) => [{ query: { zone: 'home.arpa', name: `h${n}`, type: 'A', service_name: `s${n}`, proxied: 'true' } }],
  'POST /api/v1/records': (n) => [...RECORDS(n), DEVICE_RECORD(n)].map((body) => ({ query: dry, body })),
  'GET /api/v1/records/{name}/{type}': (n) => [{ params: { name: `h${n}`, type: 'A' } }],
  'PUT /api/v1/records/{name}/{type}': (n) => [...RECORDS(n), DEVICE_RECORD(n)].map((body) => ({ query: dry, params: { name: body.name, type: body.type }, body })),
  'DELETE /api/v1/records/{name}/{type}': (n) => [{ query: dry, params: { name: `h${n}`, type: 'A' } }],
  'DELETE /api/v1/records/{name}': (n) => [{ query: dry, params: { name: `h${n}` } }],
  'GET /api/v1/zones/{zone}/export': () => [{ params: { zone: 'home.arpa' } }],
  'POST /api/v1/zones/{zone}/import': (n) => [{ query: { ...dry, mode: 'merge' }, params: { zone: 'home.arpa' }, text: `$TTL 300\nz${n} A 192.0.2.1\nz${n} TXT "hello"\n` }],
  'POST /api/v1/tokens': (n) => [{ body: { name: `t${n}`, scope: 'write' } }],
  'DELETE /api/v1/tokens/{id}': () => [{ params: { id: 'abcdef012345' } }],
  'POST /api/v1/routes': (n) => [
    { query: dry, body: { hosts: [`r${n}.home.arpa`], path: '/app', upstreams: ['192.0.2.5:80'], tls: 'off', health_path: '/healthz', listen: { port: 18080 }, balancing: { policy: 'first', try_duration: '2s', retries: 1 }, backends: { '192.0.2.5:80': { weight: 2, dead: false } }, health: { passive: { max_fails: 2, fail_duration: '10s', unhealthy_status: [502, 503], unhealthy_latency: '2s' }, active: { path: '/healthz', interval: '5s', timeout: '1s', expected_status: 200 }, recovery_interval: '30s' } } },
    { query: dry, body: { hosts: [`rd${n}.home.arpa`], upstreams: ['device:laptop:8080', 'device:nas:80'], tls: 'internal' } },
    // Route option groups (issue 15): auth of each kind, headers, limits.
    { query: dry, body: { hosts: [`ra${n}.home.arpa`], upstreams: ['192.0.2.5:80'], auth: { basic: { realm: 'staff', accounts: [{ username: 'bob', password: 'pw' }, { username: 'eve', hash: `$2a$04$${'a'.repeat(53)}` }] } } } },
    { query: dry, body: { hosts: [`rb${n}.home.arpa`], upstreams: ['192.0.2.5:80'], auth: { bearer: { tokens: ['t'.repeat(40)] } } } },
    { query: dry, body: { hosts: [`rf${n}.home.arpa`], upstreams: ['192.0.2.5:80'], auth: { forward: { url: 'https://auth.example.test/verify', copy_headers: ['Remote-User'], tls_insecure_skip_verify: true } } } },
    {
      query: dry,
      body: {
        hosts: [`rh${n}.home.arpa`],
        upstreams: ['192.0.2.5:80'],
        headers: { request: { set: { 'X-A': 'a' }, add: { 'X-B': 'b' }, delete: ['X-C'] }, response: { set: { 'X-D': 'd' } }, upstream_host: 'upstream', upstream_tls: 'verify', upstream_tls_server_name: 'app.internal' },
        limits: { max_concurrent: 5, queue_wait_ms: 100, max_body_bytes: 1000, retry_after_s: 2 },
      },
    },
  ],
  'GET /api/v1/routes/{id}': (_n, s) => [{ params: { id: s.routeId } }],
  'PUT /api/v1/routes/{id}': (n, s) => [
    { query: dry, params: { id: s.routeId }, body: { hosts: [`r${n}.home.arpa`], path: '/app', upstreams: ['192.0.2.5:80'], tls: 'internal', health_path: '/healthz', listen: { port: 18443 }, balancing: { policy: 'ip_hash', try_duration: '2s', retries: 1 }, backends: { '192.0.2.5:80': { weight: 2, dead: false } }, health: { passive: { max_fails: 2, fail_duration: '10s', unhealthy_status: [502, 503], unhealthy_latency: '2s' }, active: { path: '/healthz', interval: '5s', timeout: '1s', expected_status: 200 }, recovery_interval: '30s' } } },
    { query: dry, params: { id: s.routeId }, body: { hosts: [`ra${n}.home.arpa`], upstreams: ['192.0.2.5:80'], auth: { basic: { realm: 'staff', accounts: [{ username: 'bob', password: 'pw' }, { username: 'eve', hash: `$2a$04$${'a'.repeat(53)}` }] } } } },
    { query: dry, params: { id: s.routeId }, body: { hosts: [`rb${n}.home.arpa`], upstreams: ['192.0.2.5:80'], auth: { bearer: { tokens: ['t'.repeat(40)] } } } },
    {
      query: dry,
      params: { id: s.routeId },
      body: {
        hosts: [`rh${n}.home.arpa`],
        upstreams: ['192.0.2.5:80'],
        auth: { forward: { url: 'https://auth.example.test/verify', copy_headers: ['Remote-User'], tls_insecure_skip_verify: true } },
        headers: { request: { set: { 'X-A': 'a' }, add: { 'X-B': 'b' }, delete: ['X-C'] }, response: { set: { 'X-D': 'd' } }, upstream_host: 'upstream', upstream_tls: 'verify', upstream_tls_server_name: 'app.internal' },
        limits: { max_concurrent: 5, queue_wait_ms: 100, max_body_bytes: 1000, retry_after_s: 2 },
      },
    },
  ],
  'GET /api/v1/routes/by-host/{host}': () => [{ params: { host: 'fixed.home.arpa' } }],
  'GET /api/v1/stats/{host}': () => [{ params: { host: 'fixed.home.arpa' } }],
  'POST /api/v1/routes/{id}/backends': (_n, s) => [{ query: dry, params: { id: s.routeId }, body: { address: '192.0.2.6:80', weight: 2 } }],
  'DELETE /api/v1/routes/{id}/backends/{backend}': (_n, s) => [{ query: dry, params: { id: s.routeId, backend: '192.0.2.9:80' } }],
  'POST /api/v1/routes/{id}/backends/{backend}/dead': (_n, s) => [{ query: dry, params: { id: s.routeId, backend: '192.0.2.9:80' } }],
  'POST /api/v1/routes/{id}/backends/{backend}/alive': (_n, s) => [{ query: dry, params: { id: s.routeId, backend: '192.0.2.9:80' } }],
  'POST /api/v1/routes/by-host/{host}/backends': () => [{ query: dry, params: { host: 'fixed.home.arpa' }, body: { address: '192.0.2.6:80', weight: 2 } }],
  'DELETE /api/v1/routes/by-host/{host}/backends/{backend}': () => [{ query: dry, params: { host: 'fixed.home.arpa', backend: '192.0.2.9:80' } }],
  'POST /api/v1/routes/by-host/{host}/backends/{backend}/dead': () => [{ query: dry, params: { host: 'fixed.home.arpa', backend: '192.0.2.9:80' } }],
  'POST /api/v1/routes/by-host/{host}/backends/{backend}/alive': () => [{ query: dry, params: { host: 'fixed.home.arpa', backend: '192.0.2.9:80' } }],
  'DELETE /api/v1/routes/{id}': (_n, s) => [{ query: dry, params: { id: s.routeId } }],
  'POST /api/v1/mail/accounts': (n) => [{ body: { name: `a${n}`, email: `a${n}@example.com`, password: 'correct horse battery', allowed_domains: ['example.com'] } }],
  'DELETE /api/v1/mail/accounts/{name}': (n) => [{ params: { name: `a${n}` } }],
  'GET /api/v1/mail/accounts/{name}': () => [{ params: { name: 'acct' } }],
  'PUT /api/v1/mail/accounts/{name}': (n) => [{ query: dry, params: { name: 'acct' }, body: { email: `acct${n}@example.com`, password: 'a new long password', allowed_domains: ['example.com'] } }],
  'GET /api/v1/mail/providers/{name}': () => [{ params: { name: 'prov' } }],
  'GET /api/v1/mail/rules/{id}': () => [{ params: { id: '0123abcd' } }],
  'PUT /api/v1/mail/rules/{id}': () => [{ query: dry, params: { id: '0123abcd' }, body: { priority: 10, sender_domain: 'example.com', recipient_domain: 'example.org', account: 'acct', provider: 'prov', fallback_provider: 'prov' } }],
  'PUT /api/v1/mail/providers/{name}': (n) => PROVIDERS.map((body) => ({ params: { name: `p${n}` }, body })),
  'DELETE /api/v1/mail/providers/{name}': (n) => [{ params: { name: `p${n}` } }],
  'POST /api/v1/mail/rules': () => [{ body: { priority: 10, sender_domain: 'example.com', recipient_domain: 'example.org', account: 'acct', provider: 'prov', fallback_provider: 'prov' } }],
  'DELETE /api/v1/mail/rules/{id}': () => [{ params: { id: '0123abcd' } }],
  'GET /api/v1/mail/dkim/{domain}': () => [{ params: { domain: 'example.com' } }],
  'POST /api/v1/mail/dkim/{domain}': () => [{ params: { domain: 'example.com' }, query: { selector: 'sel' } }],
  'GET /api/v1/mail/queue': () => [{ query: { status: 'queued', limit: '10' } }],
  'GET /api/v1/mail/queue/{id}': () => [{ params: { id: '0123456789abcdef' } }],
  'DELETE /api/v1/mail/queue/{id}': () => [{ params: { id: '0123456789abcdef' } }],
  'GET /api/v1/mail/queue/{id}/log': () => [{ params: { id: '0123456789abcdef' } }],
  'POST /api/v1/mail/queue/{id}/retry': () => [{ params: { id: '0123456789abcdef' } }],
  'POST /api/v1/mail/queue/{id}/hold': () => [{ params: { id: '0123456789abcdef' } }],
  'POST /api/v1/mail/queue/{id}/release': () => [{ params: { id: '0123456789abcdef' } }],
  'GET /api/v1/mail/accounts/{name}/keys': () => [{ params: { name: 'acct' } }],
  'POST /api/v1/mail/accounts/{name}/keys': () => [{ params: { name: 'acct' }, body: { label: 'ci', expires_in: '30d' } }],
  'POST /api/v1/mail/accounts/{name}/keys/rotate': () => [{ params: { name: 'acct' }, body: { label: 'next', keep_old: '24h' } }],
  'DELETE /api/v1/mail/accounts/{name}/keys/{id}': () => [{ params: { name: 'acct', id: '0123456789ab' } }],
  'PUT /api/v1/mail/cert': (_n, s) => [{ body: { cert: s.cert.cert, key: s.cert.key } }],
  'DELETE /api/v1/mail/cert': () => [{ query: dry }],
  'GET /api/v1/mail/domains/{domain}': () => [{ params: { domain: 'lab.example' } }],
  'POST /api/v1/mail/suppressions': (n) => [{ query: dry, body: { address: `s${n}@example.org`, reason: 'asked to stop' } }],
  'DELETE /api/v1/mail/suppressions/{address}': (n) => [{ query: dry, params: { address: `s${n}@example.org` } }],
  'PUT /api/v1/mail/domains/{domain}': () => [
    {
      params: { domain: 'lab.example' },
      body: { dmarc_policy: 'quarantine', dmarc_rua: 'd@lab.example', tls_rpt_rua: 't@lab.example', mta_sts_mode: 'enforce', spf_all: '-all', spf_include: ['spf.example.net'], spf_addresses: ['192.0.2.10', '2001:db8::1'], selector: 'sel' },
    },
  ],
  'DELETE /api/v1/mail/domains/{domain}': () => [{ query: dry, params: { domain: 'lab.example' } }],
  'POST /api/v1/mail/domains/{domain}/dkim/rotate': () => [{ query: dry, params: { domain: 'lab.example' }, body: { selector: 'k2', sign_after: 60, grace: 120 } }],
  'GET /api/v1/mail/domains/{domain}/check': () => [{ params: { domain: 'lab.example' } }],
  'GET /api/v1/state': () => [{ query: { format: 'json' } }, { query: { format: 'yaml' } }],
  'POST /api/v1/state': () => [{ query: { ...dry, prune: 'false' }, body: STATE_DOC }],
  'POST /api/v1/views': (n) => [{ query: dry, body: { name: `v${n}`, cidrs: [`10.${(n >> 8) & 255}.${n & 255}.0/24`, `fd01:${(n & 0xffff).toString(16)}::/64`] } }],
  'GET /api/v1/views/{name}': () => [{ params: { name: 'lan' } }],
  'PUT /api/v1/views/{name}': (n) => [{ query: dry, params: { name: 'lan' }, body: { name: 'lan', cidrs: ['192.168.1.0/24', `172.16.${n & 255}.0/24`] } }],
  'DELETE /api/v1/views/{name}': (n) => [{ query: dry, params: { name: `v${n}` } }],
  'GET /api/v1/certificates': () => [{}],
  'GET /api/v1/certificates/{id}': () => [{ params: { id: 'crt_0123456789abcdef' } }],
  // An upload (the same leaf again is 409), and an ACME order as a dry run (a real one would ask the CA).
  'POST /api/v1/certificates': (_n, s) => [{ query: dry, body: { cert: s.cert.cert, key: s.cert.key } }, { query: { dry_run: 'true' }, body: { acme_dns01: { names: ['*.home.arpa', 'app.lab.example'] } } }],
  'DELETE /api/v1/certificates/{id}': () => [{ query: dry, params: { id: 'crt_0123456789abcdef' } }],
};

/** Slots in a zone file line the import parses: each gets every nasty string. */
const ZONE_SLOTS: [string, (v: string, n: number) => string][] = [
  ['owner', (v) => `${v} A 192.0.2.1\n`],
  ['A address', (v, n) => `z${n} A ${v}\n`],
  ['AAAA address', (v, n) => `z${n} AAAA ${v}\n`],
  ['TXT string', (v, n) => `z${n} TXT "${v}"\n`],
  ['TXT bare', (v, n) => `z${n} TXT ${v}\n`],
  ['MX exchange', (v, n) => `z${n} MX 10 ${v}\n`],
  ['CAA value', (v, n) => `z${n} CAA 0 issue "${v}"\n`],
  ['TTL', (v, n) => `z${n} ${v} A 192.0.2.1\n`],
  ['$ORIGIN', (v, n) => `$ORIGIN ${v}\nz${n} A 192.0.2.1\n`],
  ['$TTL', (v, n) => `$TTL ${v}\nz${n} A 192.0.2.1\n`],
];

/** Every `a.b.0.c` path of a JSON value, containers included. */
function paths(v: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = [];
  if (Array.isArray(v)) v.forEach((x, i) => out.push([...prefix, i], ...paths(x, [...prefix, i])));
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) out.push([...prefix, k], ...paths(x, [...prefix, k]));
  return out;
}

/** `v` with the value at `path` replaced (undefined: removed). */
function setAt(v: unknown, path: (string | number)[], value: unknown): unknown {
  if (path.length === 0) return value;
  const [head, ...rest] = path as [string | number, ...(string | number)[]];
  const copy = (Array.isArray(v) ? [...v] : { ...(v as object) }) as Record<string | number, unknown>;
  if (value === undefined && rest.length === 0) {
    if (Array.isArray(copy)) (copy as unknown[]).splice(head as number, 1);
    else delete copy[head];
  } else copy[head] = setAt(copy[head], rest, value);
  return copy;
}

/** Property names anywhere in a JSON schema (objects, unions, arrays). */
function schemaProps(s: unknown, out = new Set<string>()): Set<string> {
  if (!s || typeof s !== 'object') return out;
  const o = s as { properties?: Record<string, unknown>; oneOf?: unknown[]; anyOf?: unknown[]; allOf?: unknown[]; items?: unknown };
  for (const [k, v] of Object.entries(o.properties ?? {})) {
    out.add(k);
    schemaProps(v, out);
  }
  for (const x of [...(o.oneOf ?? []), ...(o.anyOf ?? []), ...(o.allOf ?? [])]) schemaProps(x, out);
  schemaProps(o.items, out);
  return out;
}

function inject(op: string, r: Req, auth: { authorization: string }): InjectOptions {
  const [method, template] = op.split(' ') as [Method, string];
  const url = template.replace(/\{(\w+)\}/g, (_m, p: string) => encodeURIComponent(r.params?.[p] ?? ''));
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(r.query ?? {})) for (const x of Array.isArray(v) ? v : [v]) q.append(k, String(x));
  const full = `${url}${q.size ? `?${q.toString()}` : ''}`;
  if (r.text !== undefined) return { method, url: full, headers: { ...auth, 'content-type': 'text/plain' }, payload: r.text };
  if (r.body !== undefined) return { method, url: full, headers: { ...auth, 'content-type': 'application/json' }, payload: JSON.stringify(r.body) };
  return { method, url: full, headers: auth };
}

const VIEWS = ['/api/v1/records', '/list-records', '/api/v1/routes', '/api/v1/plan', '/api/v1/caddyfile', '/api/v1/zones/home.arpa/export', '/api/v1/zones/lab.example/export'];
const MAIL_VIEWS = ['/api/v1/certificates', '/api/v1/views', '/api/v1/mail/accounts', '/api/v1/mail/providers', '/api/v1/mail/rules', '/api/v1/mail/cert', '/api/v1/mail/domains', '/api/v1/mail/suppressions', '/api/v1/tokens'];

describe('api: hostile input never gets a 500 and never breaks a view', function () {
  this.timeout(600_000);
  let cert: Setup['cert'];
  let ops: { op: string; body: unknown }[] = [];
  /** The tailnet every fixture reads once (a fake tailscaled): devices for target_device and device: upstreams. */
  let tailnet: FakeLocalApi;

  before(async () => {
    tailnet = await startFakeLocalApi({ id: 'nSELF1CNTRL', hostName: 'dnsproxy', ips: ['100.64.0.1'] }, [
      { id: 'nLAPTOP1CNTRL', hostName: 'laptop', ips: ['100.64.0.5', 'fd7a:115c:a1e0::5'] },
      { id: 'nNAS1CNTRL', hostName: 'nas', ips: ['100.64.0.7'], online: false },
    ]);
    cert = await selfSignedCert('relay.example.net', new Date());
    const f = await apiFixture();
    const doc = f.app.swagger() as { paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: unknown }> }; parameters?: unknown[] }>> };
    ops = Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.entries(methods)
        .filter(([, o]) => o.requestBody || o.parameters?.length)
        .map(([m, o]) => ({ op: `${m.toUpperCase()} ${path}`, body: o.requestBody && Object.values(o.requestBody.content)[0]?.schema })),
    );
    await f.close();
  });
  after(async () => tailnet.close());

  it('has a valid request for every operation that takes a body or parameters, covering every body field', () => {
    expect(ops.length).to.be.greaterThan(30);
    expect(ops.map((o) => o.op).filter((op) => !BASE[op]), 'operations without a hostile-input baseline').to.deep.equal([]);
    const setup = { routeId: 'api:00000000', cert };
    for (const { op, body } of ops) {
      const covered = new Set(BASE[op]!(0, setup).flatMap((r) => paths(r.body).map((p) => p.filter((k) => typeof k === 'string').at(-1))));
      expect([...schemaProps(body)].filter((k) => !covered.has(k)), `${op}: body fields no baseline sets`).to.deep.equal([]);
    }
  });

  for (const op of Object.keys(BASE))
    describe(op, () => {
      let f: ApiFixture;
      let setup: Setup;
      let n = 0;
      beforeEach(async () => {
        f = await apiFixture({ caddyfile: caddyfileExport, devices: { source: localApiSource(tailnet.socket), timers: new ManualTimers() } });
        const polled = once(f.devices.registry, 'polled');
        f.devices.registry.start();
        await polled;
        const post = async (method: Method, url: string, payload: object) => {
          const res = await f.app.inject({ method, url, headers: f.auth, payload });
          expect(res.statusCode, `setup ${method} ${url}: ${res.body}`).to.be.within(200, 299);
          return res.json();
        };
        await post('POST', '/api/v1/mail/accounts', { name: 'acct', email: 'acct@example.com', password: 'correct horse battery', allowed_domains: ['example.com'] });
        await post('PUT', '/api/v1/mail/providers/prov', { type: 'mx' });
        await post('POST', '/api/v1/views', { name: 'lan', cidrs: ['192.168.1.0/24'] });
        const route = (await post('POST', '/api/v1/routes', { hosts: ['fixed.home.arpa'], upstreams: ['192.0.2.9:80', '192.0.2.11:80'] })) as { route: { id: string } };
        setup = { routeId: route.route.id, cert };
      });
      afterEach(async () => f.close());

      // Rows written on this connection, committed or rolled back: while it stays the same, nothing
      // any view reads has changed since the views last answered 200, so they are not asked again.
      const changes = () => f.db.prepare('SELECT total_changes()').pluck().get() as number;
      let checked = -1;

      /** Sends one request; checks the answer and, when anything was written, every view after it. */
      const attempt = async (label: string, r: Req) => {
        const res = await f.app.inject(inject(op, r, f.auth));
        const what = `${op} ${label}: ${res.statusCode} ${res.body.slice(0, 400)}`;
        expect(res.statusCode, what).to.be.below(500);
        if (res.statusCode >= 400) {
          expect(REFUSALS.has(res.statusCode), what).to.equal(true);
          const err = res.json().error as { code: keyof typeof ERRORS; message: string };
          expect(ERRORS[err.code]?.status, what).to.equal(res.statusCode);
          expect(err.message, what).to.be.a('string');
        }
        if (changes() === checked) return res.statusCode;
        for (const url of [...VIEWS, ...MAIL_VIEWS]) {
          const view = await f.app.inject({ method: 'GET', url, headers: f.auth });
          expect(view.statusCode, `GET ${url} after ${what}`).to.equal(200);
        }
        expect(() => render(f.proxy.desired()), `Caddy render after ${what}`).not.to.throw();
        checked = changes();
        return res.statusCode;
      };

      it('the baseline itself succeeds (or is refused for state only)', async () => {
        for (const r of BASE[op]!(++n, setup)) {
          const status = await attempt('baseline', r);
          expect(status < 300 || STATE_REFUSALS.has(status), `${op} baseline ${JSON.stringify(r).slice(0, 200)}: ${status}`).to.equal(true);
        }
      });

      it('every body field: each nasty value, removed, and an unknown key beside it', async () => {
        for (const [i, base] of BASE[op]!(0, setup).entries()) {
          if (base.body === undefined) continue;
          for (const path of paths(base.body)) {
            for (const [name, value] of NASTY) {
              const r = BASE[op]!(++n, setup)[i]!;
              await attempt(`body ${path.join('.')} = ${name}`, { ...r, body: setAt(r.body, path, value) });
            }
            const r = BASE[op]!(++n, setup)[i]!;
            await attempt(`body ${path.join('.')} removed`, { ...r, body: setAt(r.body, path, undefined) });
          }
          for (const [name, value] of NASTY) await attempt(`whole body = ${name}`, { ...BASE[op]!(++n, setup)[i]!, body: value });
          const r = BASE[op]!(++n, setup)[i]!;
          await attempt('unknown key', { ...r, body: { ...(r.body as object), surprise: '{http.request.host}' } });
        }
      });

      it('every path and query parameter: each nasty string, and a repeated query key', async () => {
        for (const [i, base] of BASE[op]!(0, setup).entries())
          for (const where of ['params', 'query'] as const)
            for (const key of Object.keys(base[where] ?? {})) {
              for (const [name, value] of STRINGS) {
                const r = BASE[op]!(++n, setup)[i]!;
                await attempt(`${where} ${key} = ${name}`, { ...r, [where]: { ...r[where], [key]: value } });
              }
              if (where === 'query') {
                const r = BASE[op]!(++n, setup)[i]!;
                await attempt(`query ${key} repeated`, { ...r, query: { ...r.query, [key]: [r.query![key]!, r.query![key]!] as unknown as string } });
              }
            }
      });

      if (op === 'POST /api/v1/zones/{zone}/import')
        it('every zone file slot: each nasty string; the whole file as each nasty value', async () => {
          for (const [slot, line] of ZONE_SLOTS)
            for (const [name, value] of STRINGS) {
              const r = BASE[op]!(++n, setup)[0]!;
              await attempt(`zone file ${slot} = ${name}`, { ...r, text: `${r.text}${line(value, n)}` });
            }
          for (const [name, value] of NASTY) {
            const r = BASE[op]!(++n, setup)[0]!;
            await attempt(`zone file = ${name}`, typeof value === 'string' ? { ...r, text: value } : { ...r, text: undefined, body: value });
          }
        });
    });
});
