// Turns validated user input into store writes: places names in a served zone and maps the
// original service's add-record body onto an A record set with a proxy block. Pure.
import { DEVICE_PREFIX } from './device.js';
import { isIP } from 'node:net';
import { AppError, fieldError, type ErrorCode } from '../errors.js';
import { ACME_HINT, acmeNameProblem, hostNameProblem } from './certname.js';
import type { AddRecordBody } from './legacy.js';
import { ownerName } from './name.js';
import { DEFAULT_TTL, foldDuplicates, rrsetSizeProblem, type Proxy, type RecordData, type RecordInput, type RecordWrite } from './record.js';
import type { RecordViews } from './view.js';

/** Absolute owner name + zone for user input, or a 400 naming `field` (`code`: where the field is, body by default). */
export function placeName(input: string, zones: readonly string[], field = 'name', code: ErrorCode = 'invalid_body'): { name: string; zone: string } {
  const placed = ownerName(input, zones);
  if ('error' in placed) throw fieldError(field, placed.error, code);
  return placed;
}

/**
 * Why a target name (CNAME, NS, PTR, MX exchange, SRV target; absolute) is no host name, or null.
 * The syntax allows all-digit labels, so `100.1.1.2` passes it as the name `100.1.1.2.`, which never
 * resolves: no top-level label is all digits (RFC 3696 §2).
 */
function targetProblem(target: string, type: RecordData['type']): string | null {
  const bare = target.replace(/\.$/, '');
  if (!/(^|\.)\d+$/.test(bare)) return null;
  const what = ({ MX: 'an MX exchange', SRV: 'an SRV target', NS: 'an NS target' } as Record<string, string>)[type] ?? `a ${type} target`;
  const fix = type === 'CNAME' ? `for an address use an A record (AAAA for IPv6) at this name` : `give the host an A record (AAAA for IPv6) and name it here`;
  return isIP(bare) ? `${bare} is an IP address, but ${what} must be a host name: ${fix}` : `${bare} ends in an all-digit label, which no domain name has: ${what} must be a host name`;
}

/** 400 for input the model's syntax allows but no working setup has (targets that are addresses, certificates for names that cannot have one). */
function checkWrite(w: RecordWrite, fieldPrefix: string): void {
  const issues: { path: string; message: string }[] = [];
  const d = w.data;
  if (d.type === 'CNAME' || d.type === 'NS' || d.type === 'PTR')
    d.values.forEach((v, i) => {
      const problem = targetProblem(v, d.type);
      if (problem) issues.push({ path: `${fieldPrefix}values.${i}`, message: problem });
    });
  if (d.type === 'MX')
    d.values.forEach((v, i) => {
      const problem = targetProblem(v.exchange, d.type);
      if (problem) issues.push({ path: `${fieldPrefix}values.${i}.exchange`, message: problem });
    });
  if (d.type === 'SRV')
    d.values.forEach((v, i) => {
      const problem = targetProblem(v.target, d.type);
      if (problem) issues.push({ path: `${fieldPrefix}values.${i}.target`, message: problem });
    });
  if (w.proxy?.enabled) {
    const host = w.name.replace(/\.$/, '');
    const hostProblem = hostNameProblem(host);
    if (hostProblem) issues.push({ path: `${fieldPrefix}name`, message: `${host} is proxied, so it ${hostProblem}` });
    // RFC 4592 makes `sub.*.example` an ordinary DNS name, but Caddy reads any `*` label of a host as a wildcard.
    else if (host.split('.').slice(1).includes('*'))
      issues.push({ path: `${fieldPrefix}name`, message: `${host} is proxied, but its "*" label below the leftmost one is an ordinary DNS label that Caddy would read as a wildcard` });
    const acme = w.proxy.tls === 'acme' ? acmeNameProblem(host) : null;
    if (acme) issues.push({ path: `${fieldPrefix}proxy.tls`, message: `acme: ${acme}; ${ACME_HINT}` });
  }
  if (issues.length) throw new AppError('invalid_body', undefined, issues);
}

/** Each view's values with duplicates folded (RFC 2181 §5) and its answer size checked; keys in name order, so equal input stores equal text. */
function foldViews(name: string, type: RecordData['type'], views: RecordViews, prefix: string, notes: string[]): RecordViews {
  const out: RecordViews = {};
  for (const view of Object.keys(views).sort()) {
    const folded = foldDuplicates({ type, values: (views[view] as { values: string[] }).values } as RecordData);
    const tooBig = rrsetSizeProblem(name, folded.data);
    if (tooBig) throw fieldError(`${prefix}${view}.values`, tooBig);
    notes.push(...folded.notes.map((n) => `${prefix}${view}.${n}`));
    out[view] = { values: folded.data.values as string[] };
  }
  return out;
}

export function recordWrite(input: RecordInput, zones: readonly string[], fieldPrefix = ''): RecordWrite {
  const { name, service_name, ttl, ...rest } = input;
  const { proxy, views, ...data } = rest as typeof rest & { proxy?: Proxy; views?: RecordViews };
  const placed = placeName(name, zones, `${fieldPrefix}name`);
  const tooBig = rrsetSizeProblem(placed.name, data);
  if (tooBig) throw fieldError(`${fieldPrefix}values`, tooBig);
  const folded = foldDuplicates(data);
  const write: RecordWrite = { ...placed, data: folded.data, ttl, proxy: proxy ?? null, service_name: service_name ?? null };
  const notes = folded.notes.map((n) => `${fieldPrefix}${n}`);
  if (views && Object.keys(views).length) write.views = foldViews(placed.name, data.type, views, `${fieldPrefix}views.`, notes);
  if (notes.length) write.notes = notes;
  checkWrite(write, fieldPrefix);
  return write;
}

/** `POST /add-record`: A record `name` → `ip` (default: the node IP), upstream `forward_to_ip:port`. */
export function legacyWrite(body: AddRecordBody, zones: readonly string[], nodeIp: string): RecordWrite {
  const ip = body.ip ?? nodeIp;
  const host = body.forward_to_ip ?? ip;
  const upstream = body.port === undefined ? null : `${host.includes(':') && !host.startsWith(DEVICE_PREFIX) ? `[${host}]` : host}:${body.port}`;
  if (body.proxy_enabled && !upstream) throw new AppError('invalid_body', undefined, [{ path: 'port', message: 'is required when proxy_enabled is true' }]);
  const write: RecordWrite = {
    ...placeName(body.name, zones),
    data: { type: 'A', values: [ip] },
    ttl: body.ttl ?? DEFAULT_TTL,
    proxy: upstream ? { enabled: body.proxy_enabled, upstreams: [upstream], ...(body.balancing ? { balancing: body.balancing } : {}), ...(body.health ? { health: body.health } : {}) } : null,
    service_name: body.service_name,
  };
  checkWrite(write, '');
  return write;
}
