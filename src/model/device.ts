// Tailnet device names as records and upstreams name them (`target_device`, `device:<name>:<port>`).
import { isIP } from 'node:net';
import { z } from 'zod';

/** The prefix of an upstream host that names a tailnet device: `device:laptop:8080`. */
export const DEVICE_PREFIX = 'device:';

/** Tailscale's MagicDNS names a device by one DNS label (RFC 1123): what we accept as a device name. */
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Why `text` is not a device name (one lower-case DNS label, as MagicDNS shows it), or null. */
export function deviceNameProblem(text: string): string | null {
  if (text.length === 0) return 'must not be empty';
  if (text.length > 63) return 'must be at most 63 characters (one DNS label)';
  if (!LABEL.test(text)) return 'must be one DNS label: lower-case letters, digits and "-", not starting or ending with "-"';
  return null;
}

/** zod: a device name; upper case is folded (MagicDNS names are case-insensitive). */
export const deviceName = z
  .string()
  .transform((v) => v.toLowerCase())
  .superRefine((v, ctx) => {
    const problem = deviceNameProblem(v);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  })
  .describe('A tailnet device by its MagicDNS name (the first label of its DNS name, e.g. "laptop")');

/** `device:<name>` → the name, or null when `host` does not name a device. */
export function deviceOfHost(host: string): string | null {
  return host.toLowerCase().startsWith(DEVICE_PREFIX) ? host.slice(DEVICE_PREFIX.length).toLowerCase() : null;
}

/** Why `device:<name>:<port>` is unusable, or null; undefined when `text` does not start with `device:`. */
export function deviceUpstreamProblem(text: string): string | null | undefined {
  if (!text.toLowerCase().startsWith(DEVICE_PREFIX)) return undefined;
  const m = /^([^:]*):(\d{1,5})$/.exec(text.slice(DEVICE_PREFIX.length));
  if (!m) return 'must be device:<name>:<port>';
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return 'port must be 1-65535';
  const problem = deviceNameProblem(m[1]!.toLowerCase());
  return problem ? `device name ${problem}` : null;
}

/** What a record bound to a device shows of it: `ok` (online), `offline` (known, not connected), `missing` (no longer in the tailnet: the last address is kept), `unknown` (no device list yet). */
export const DEVICE_STATES = ['ok', 'offline', 'missing', 'unknown'] as const;
export type DeviceState = (typeof DEVICE_STATES)[number];

/** One tailnet device as the API lists it; every field checked (src/tailnet/status.ts). */
export interface Device {
  name: string;
  /** MagicDNS name, absolute (`laptop.tail1234.ts.net.`), or null when it has none. */
  dns_name: string | null;
  /** The device's own host name (free text from the device, shown only). */
  host_name: string;
  /** Tailscale's stable node id. */
  id: string;
  ipv4: string[];
  ipv6: string[];
  online: boolean;
  /** ISO time, or null when never seen (Tailscale's zero time). */
  last_seen: string | null;
  /** This node itself. */
  self: boolean;
}

/** Addresses of `device` for a record type: A → IPv4, AAAA → IPv6. */
export function deviceAddresses(device: Pick<Device, 'ipv4' | 'ipv6'>, type: 'A' | 'AAAA'): string[] {
  return type === 'A' ? device.ipv4 : device.ipv6;
}

/** True for an IP literal without a zone id: the only thing from LocalAPI that reaches DNS data or Caddy. */
export function plainIp(text: string): 4 | 6 | 0 {
  if (text.includes('%')) return 0;
  const f = isIP(text);
  return f === 4 ? 4 : f === 6 ? 6 : 0;
}
