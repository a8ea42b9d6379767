// Turns validated user input into store writes: places names in a served zone and maps the
// original service's add-record body onto an A record set with a proxy block. Pure.
import { AppError, fieldError, type ErrorCode } from '../errors.js';
import type { AddRecordBody } from './legacy.js';
import { ownerName } from './name.js';
import { DEFAULT_TTL, rrsetSizeProblem, type Proxy, type RecordData, type RecordInput, type RecordWrite } from './record.js';

/** Absolute owner name + zone for user input, or a 400 naming `field` (`code`: where the field is, body by default). */
export function placeName(input: string, zones: readonly string[], field = 'name', code: ErrorCode = 'invalid_body'): { name: string; zone: string } {
  const placed = ownerName(input, zones);
  if ('error' in placed) throw fieldError(field, placed.error, code);
  return placed;
}

export function recordWrite(input: RecordInput, zones: readonly string[], fieldPrefix = ''): RecordWrite {
  const { name, service_name, ttl, ...rest } = input;
  const { proxy, ...data } = rest as typeof rest & { proxy?: Proxy };
  const placed = placeName(name, zones, `${fieldPrefix}name`);
  const tooBig = rrsetSizeProblem(placed.name, data as RecordData);
  if (tooBig) throw fieldError(`${fieldPrefix}values`, tooBig);
  return { ...placed, data: data as RecordData, ttl, proxy: proxy ?? null, service_name: service_name ?? null };
}

/** `POST /add-record`: A record `name` → `ip` (default: the node IP), upstream `forward_to_ip:port`. */
export function legacyWrite(body: AddRecordBody, zones: readonly string[], nodeIp: string): RecordWrite {
  const ip = body.ip ?? nodeIp;
  const host = body.forward_to_ip ?? ip;
  const upstream = body.port === undefined ? null : `${host.includes(':') ? `[${host}]` : host}:${body.port}`;
  if (body.proxy_enabled && !upstream) throw new AppError('invalid_body', undefined, [{ path: 'port', message: 'is required when proxy_enabled is true' }]);
  return {
    ...placeName(body.name, zones),
    data: { type: 'A', values: [ip] },
    ttl: body.ttl ?? DEFAULT_TTL,
    proxy: upstream ? { enabled: body.proxy_enabled, upstreams: [upstream] } : null,
    service_name: body.service_name,
  };
}
