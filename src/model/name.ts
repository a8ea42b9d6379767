// Domain-name rules shared by every edge (API, CLI, zone import, config).
// A name is kept lower-case and absolute (trailing dot) once it is inside the system.
import { deviceUpstreamProblem } from './device.js';
import { isIP } from 'node:net';
import { z } from 'zod';

/** RFC 1035: 63 octets per label. */
export const MAX_LABEL_BYTES = 63;
/** RFC 1035: 255 octets on the wire = 253 characters of presentation text without the root dot. */
export const MAX_NAME_CHARS = 253;

// Letters, digits, hyphen and underscore (for _srv._tcp and DKIM selectors), no leading/trailing
// hyphen. Nothing here can break out of a zone file or a Caddyfile: no whitespace, quotes,
// braces, semicolons, backslashes or placeholders.
const LABEL_RE = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * Returns why `text` is not a usable domain name, or null when it is. With `wildcard`, `*` is
 * allowed as the leftmost label. With `ownerStars` (record owners: API and zone import) a `*`
 * label anywhere else is allowed too: RFC 4592 §2.1.1 makes it an ordinary label
 * (`sub.*.example.` is a name like any other, and only a leftmost `*` is a wildcard). Route hosts
 * leave it out: Caddy reads every `*` label in a host as a wildcard.
 */
export function nameProblem(text: string, opts: { wildcard?: boolean; ownerStars?: boolean } = {}): string | null {
  if (text.length === 0) return 'must not be empty';
  if (/[^\x21-\x7e]/.test(text)) return 'must not contain whitespace, control or non-ASCII characters';
  const bare = text.endsWith('.') ? text.slice(0, -1) : text;
  if (bare.length === 0) return 'must not be the root';
  if (bare.length > MAX_NAME_CHARS) return `longer than ${MAX_NAME_CHARS} characters`;
  const labels = bare.toLowerCase().split('.');
  for (const [i, label] of labels.entries()) {
    if (label === '') return 'has an empty label';
    if (label.length > MAX_LABEL_BYTES) return `label "${label.slice(0, 20)}…" is longer than ${MAX_LABEL_BYTES} bytes`;
    if (label === '*') {
      if (!opts.wildcard) return 'wildcard "*" is not allowed here';
      if (i !== 0 && !opts.ownerStars) return 'wildcard "*" must be the leftmost label';
      continue;
    }
    if (!LABEL_RE.test(label)) return `label "${label}" may hold only letters, digits, "-" and "_" and must not start or end with "-"`;
  }
  return null;
}

/** Lower-case, absolute form: `Foo.Home.Arpa` → `foo.home.arpa.`. Caller has checked `nameProblem`. */
export function absolute(text: string): string {
  const lower = text.toLowerCase();
  return lower.endsWith('.') ? lower : `${lower}.`;
}

/** True when absolute `name` equals absolute `zone` or lies below it. */
export function inZone(name: string, zone: string): boolean {
  return name === zone || name.endsWith(`.${zone}`);
}

/** The most specific of `zones` that contains `name`, or undefined. */
export function zoneOf(name: string, zones: readonly string[]): string | undefined {
  let best: string | undefined;
  for (const zone of zones) if (inZone(name, zone) && (!best || zone.length > best.length)) best = zone;
  return best;
}

/**
 * Resolves user input to an absolute owner name inside one of `zones`.
 * Rules: input ending in a served zone (with or without the final dot) is taken as absolute;
 * a single label is placed in `zones[0]`; `@` is the apex of `zones[0]`; anything else is outside.
 */
export function ownerName(input: string, zones: readonly string[]): { name: string; zone: string } | { error: string } {
  const first = zones[0];
  if (!first) return { error: 'no zones are served' };
  if (input === '@') return { name: first, zone: first };
  const name = absolute(input);
  const zone = zoneOf(name, zones);
  if (zone) return { name, zone };
  if (!input.replace(/\.$/, '').includes('.')) {
    const placed = `${name}${first}`;
    const problem = nameProblem(placed, { wildcard: true, ownerStars: true });
    return problem ? { error: problem } : { name: placed, zone: first };
  }
  return { error: `"${input}" is outside the served zones (${zones.join(', ')})` };
}

/** zod: owner name as typed by a user (relative or absolute, wildcard allowed). */
/**
 * The label under which our DNS answers Caddy about plain proxied names (`_px._tcp.<host>`, src/dns/upstreams.ts).
 * No stored record may use it: it would shadow or be shadowed by those answers.
 */
export const RESERVED_PROXY_LABEL = '_px';

export const ownerNameInput = z
  .string()
  .max(MAX_NAME_CHARS + 1)
  .superRefine((v, ctx) => {
    if (v === '@') return;
    const problem = nameProblem(v, { wildcard: true, ownerStars: true });
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
    else if (v.toLowerCase().replace(/\.$/, '').split('.').includes(RESERVED_PROXY_LABEL))
      ctx.addIssue({ code: 'custom', message: `the label "${RESERVED_PROXY_LABEL}" is reserved for the proxy's answers to Caddy` });
  })
  .describe('Owner name: a single label, "@", or a name inside a served zone');

/** zod: a target name (CNAME/NS/PTR/MX/SRV data); always absolute after parsing. */
export const targetName = z
  .string()
  .max(MAX_NAME_CHARS + 1)
  .superRefine((v, ctx) => {
    const problem = isIP(v) === 6 ? `${v} is an IPv6 address, but a target must be a host name (an address goes in an AAAA record)` : nameProblem(v);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  })
  .transform(absolute)
  .describe('Absolute domain name (trailing dot optional)');

/** zod: a target that may also be the root `.`: null MX (RFC 7505), SRV "service not available" (RFC 2782). */
export const targetOrRoot = z
  .string()
  .max(MAX_NAME_CHARS + 1)
  .superRefine((v, ctx) => {
    if (v === '.') return;
    const problem = isIP(v) === 6 ? `${v} is an IPv6 address, but a target must be a host name (an address goes in an AAAA record)` : nameProblem(v);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  })
  .transform((v) => (v === '.' ? '.' : absolute(v)))
  .describe('Absolute domain name (trailing dot optional), or "." for none');

export const ipv4 = z.string().refine((v) => isIP(v) === 4, 'must be an IPv4 address').describe('IPv4 address');
// isIP() accepts a zone id (`fe80::1%eth0`): it names an interface of one host, has no meaning in
// DNS data, and breaks the zone file export, so no address value may carry one.
export const ipv6 = z
  .string()
  .superRefine((v, ctx) => {
    if (v.includes('%')) ctx.addIssue({ code: 'custom', message: 'must not carry an IPv6 zone id (%…): it names an interface of one host' });
    else if (isIP(v) !== 6) ctx.addIssue({ code: 'custom', message: 'must be an IPv6 address' });
  })
  .describe('IPv6 address');
export const port = z.number().int('must be an integer').min(1, 'must be 1-65535').max(65535, 'must be 1-65535');

/**
 * An upstream `host:port` for the proxy: IPv4, bracketed IPv6 or a hostname (Tailscale device
 * names included). Returns why it is unusable, or null.
 */
export function upstreamProblem(text: string): string | null {
  const device = deviceUpstreamProblem(text);
  if (device !== undefined) return device;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (!m) return 'must be host:port (IPv6 in brackets)';
  const p = Number(m[3]);
  if (p < 1 || p > 65535) return 'port must be 1-65535';
  if (m[1] !== undefined) return isIP(m[1]) === 6 ? null : 'bracketed host must be an IPv6 address';
  const host = m[2] ?? '';
  if (isIP(host) === 4) return null;
  // inet_aton() reads 127.1, 2130706433, 0x7f000001 and 0177.0.0.1 as 127.0.0.1: a resolver that
  // uses it would dial an address no check saw. A host name never ends in such a label (RFC 3696 §2).
  if (/^(?:\d+|0x[0-9a-f]+)$/i.test(host.split('.').pop() ?? '')) return 'host must be a dotted-quad IPv4 address or a name (a name does not end in a numeric label)';
  const problem = nameProblem(host);
  return problem ? `host ${problem}` : null;
}

export const upstream = z
  .string()
  .superRefine((v, ctx) => {
    const problem = upstreamProblem(v);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  })
  .describe('Upstream host:port');
