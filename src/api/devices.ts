// Tailnet devices: GET /api/v1/devices, and `target_device` on record writes (a record set whose
// addresses come from a device and follow it: src/tailnet/binder.ts).
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { AppError, fieldError } from '../errors.js';
import { deviceAddresses, deviceName, deviceOfHost, type Device } from '../model/device.js';
import type { StoredRecord } from '../model/record.js';
import type { TailnetDeps } from '../tailnet/index.js';
import type { ApiDeps } from './app.js';
import { successes } from './openapi.js';

/** The device a write names, resolved: present in the tailnet now, with an address of the family `type` needs. */
export interface TargetDevice {
  device: Device;
  type: 'A' | 'AAAA';
}

/** Why the tailnet cannot be asked, to add to an "unknown device" answer. */
function listProblem(t: TailnetDeps | undefined): string {
  if (!t || !t.registry.enabled) return ' (this controller has no tailnet device source)';
  if (!t.registry.known) return ` (the device list has not been read yet${t.registry.lastError ? `: ${t.registry.lastError}` : ''})`;
  return '';
}

/**
 * `target_device` → the device (400 naming `field` when the name is malformed, not in the tailnet
 * now, or the device has no address of the type's family).
 */
export function resolveTarget(deps: Pick<ApiDeps, 'devices'>, raw: unknown, type: 'A' | 'AAAA', field = 'target_device'): TargetDevice {
  const parsed = deviceName.safeParse(raw);
  if (!parsed.success) throw fieldError(field, parsed.error.issues[0]?.message ?? 'must be a device name');
  const device = deps.devices?.registry.present(parsed.data);
  if (!device) throw fieldError(field, `no device ${parsed.data} in the tailnet${listProblem(deps.devices)}; GET /api/v1/devices lists them`);
  if (deviceAddresses(device, type).length === 0) throw fieldError(field, `device ${device.name} has no ${type === 'A' ? 'IPv4' : 'IPv6'} address`);
  return { device, type };
}

/** 400 entries for `device:<name>:<port>` upstreams naming no device this controller has seen. */
export function unknownDeviceFields(deps: Pick<ApiDeps, 'devices'>, upstreams: readonly [string, string][]): { path: string; message: string }[] {
  const out: { path: string; message: string }[] = [];
  for (const [path, u] of upstreams) {
    const name = deviceOfHost(u.slice(0, u.lastIndexOf(':')));
    if (name !== null && !deps.devices?.registry.get(name)) out.push({ path, message: `no device ${name} in the tailnet${listProblem(deps.devices)}` });
  }
  return out;
}

/** The request's resolved `target_device`, set by takeTargetDevice(). */
const targets = new WeakMap<FastifyRequest, TargetDevice>();

/**
 * preValidation for the record routes: a body with `target_device` (type A or AAAA, no `values`)
 * gets the device's addresses as its values before the record schema checks it; the handler then
 * binds the record (bindRecord). Never on a body without it.
 */
export function takeTargetDevice(deps: Pick<ApiDeps, 'devices'>) {
  return async (req: FastifyRequest): Promise<void> => {
    const body = req.body as Record<string, unknown> | null;
    if (body === null || typeof body !== 'object' || Array.isArray(body) || !('target_device' in body)) return;
    const type = typeof body.type === 'string' ? body.type.toUpperCase() : '';
    if (type !== 'A' && type !== 'AAAA') throw fieldError('type', 'must be A or AAAA with target_device (the device gives addresses)');
    if ('values' in body) throw fieldError('values', 'leave values out with target_device: they come from the device');
    const target = resolveTarget(deps, body.target_device, type);
    delete body.target_device;
    body.values = deviceAddresses(target.device, type);
    targets.set(req, target);
  };
}

export function targetOf(req: FastifyRequest): TargetDevice | undefined {
  return targets.get(req);
}

/** Inside the write's transaction: `record` follows `target` from now on. */
export function bindRecord(deps: Pick<ApiDeps, 'devices'>, record: StoredRecord, target: TargetDevice): void {
  deps.devices?.bindings.set({ name: record.name, type: target.type, device: target.device.name, device_id: target.device.id, updated_at: record.updated_at });
}

/** A listed record with its device (`{name, state}`) when it is bound to one. */
export function withDevice<T extends StoredRecord>(deps: Pick<ApiDeps, 'devices'>, r: T): T | (T & { device: { name: string; state: string } }) {
  const d = deps.devices?.binder.deviceOf(r);
  return d ? { ...r, device: d } : r;
}

export const deviceRoutes =
  (deps: ApiDeps): FastifyPluginAsync =>
  async (plain) => {
    const app = plain.withTypeProvider<ZodTypeProvider>();
    app.get(
      '/api/v1/devices',
      {
        schema: {
          summary: 'List the tailnet devices (name, addresses, online, last seen)',
          description: 'Devices from tailscaled (LocalAPI status, polled every device_poll_ms). A device that left is listed with `present: false` and state `missing` while this controller runs: records bound to it keep its last addresses.',
          response: successes({ 200: 'the devices and the state of the device list' }),
          tags: ['devices'],
        },
      },
      async () => {
        const t = deps.devices;
        if (!t) throw new AppError('unavailable', 'this controller has no tailnet device source');
        return {
          devices: t.registry.list(),
          source: { enabled: t.registry.enabled, known: t.registry.known, polls: t.registry.polls, last_error: t.registry.lastError },
        };
      },
    );
  };
